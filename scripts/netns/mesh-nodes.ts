// What every multi-host run needs before `hostmesh run` on its test hosts: one root CA, and
// per host a node CA (dir/<host>/certs) and a node config (dir/<host>/hostmesh.yaml) that
// points at the shared policy dir. Used by the end-to-end tests, the demo and the mesh bench.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { initRootCa, makeNodeCa } from '../../certs/ca-ops.ts'

export interface MeshNodeOptions {
  readonly policyDir: string
  /** More node config lines (YAML), e.g. "drainSeconds: 1\n". */
  readonly extra?: string
  /** Give the node its IPv6 address too (default true). */
  readonly ipv6?: boolean
  readonly trustDomain?: string
}

/** Returns each host's node config path, by host name. */
export async function meshNodeConfigs(hosts: readonly { name: string; ipv4: string; ipv6: string }[], dir: string, opts: MeshNodeOptions): Promise<Map<string, string>> {
  const root = join(dir, 'root')
  await initRootCa({ dir: root, trustDomain: opts.trustDomain ?? 'cluster.local' })
  const configs = new Map<string, string>()
  for (const h of hosts) {
    const certDir = join(dir, h.name, 'certs')
    await makeNodeCa({ caDir: root, node: h.name, outDir: certDir })
    const addresses = opts.ipv6 === false ? h.ipv4 : `${h.ipv4}, "${h.ipv6}"`
    const config = join(dir, h.name, 'hostmesh.yaml')
    writeFileSync(config, `node: {name: ${h.name}, addresses: [${addresses}]}\npolicyDir: ${opts.policyDir}\ncertDir: ${certDir}\n${opts.trustDomain ? `trustDomain: ${opts.trustDomain}\n` : ''}${opts.extra ?? ''}`)
    configs.set(h.name, config)
  }
  return configs
}
