// What every multi-host run needs around `hostmesh run` on its test hosts: one root CA, and
// per host a node CA (dir/<host>/certs) and a node config (dir/<host>/hostmesh.yaml) that
// points at the shared policy dir and at its own admin socket (dir/<host>/admin.sock); then
// waiting for each daemon's /ready. Used by the end-to-end tests, the demo and the mesh bench.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { initRootCa, makeNodeCa } from '../../certs/ca-ops.ts'
import type { HostProcess, TestHost } from './hosts.ts'

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
    // The hosts share this filesystem: each daemon gets an admin socket of its own.
    writeFileSync(config, `node: {name: ${h.name}, addresses: [${addresses}]}\npolicyDir: ${opts.policyDir}\ncertDir: ${certDir}\nadmin: {socket: ${join(dir, h.name, 'admin.sock')}}\n${opts.trustDomain ? `trustDomain: ${opts.trustDomain}\n` : ''}${opts.extra ?? ''}`)
    configs.set(h.name, config)
  }
  return configs
}

/**
 * Waits for the hostmesh `daemon` on `host` to answer /ready 200 (its admin port is loopback
 * inside the host). Throws with /ready's last answer and the daemon's last log lines when it
 * exits or `timeoutMs` passes.
 */
export async function untilReady(host: TestHost, daemon: HostProcess, timeoutMs = 20_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let last = ''
  for (let i = 0; i < 1000 && Date.now() < deadline && daemon.running; i++) {
    const res = await host.exec(['curl', '-sS', '-m', '2', '-w', '\n%{http_code}', 'http://127.0.0.1:15000/ready'], { timeoutMs: 5000 })
    const cut = res.stdout.lastIndexOf('\n')
    if (res.stdout.slice(cut + 1) === '200') return
    last = res.stdout.slice(0, Math.max(0, cut))
    await new Promise((r) => setTimeout(r, 100))
  }
  const tail = daemon.output.trim().split('\n').slice(-15).join('\n')
  throw new Error(`hostmesh on ${host.name} ${daemon.running ? `was not ready after ${timeoutMs / 1000} s (/ready: ${last.replace(/\s+/g, ' ').slice(0, 300)})` : 'exited'}; its last log lines:\n${tail}`)
}
