// The start of every two-or-three-host L7 end-to-end test: a policy dir holding the hosts'
// Node documents and the test's own policy, a node config and node CA per host, `hostmesh
// run` on each, and /ready from all of them; on failure, each daemon's last log lines.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { HostProcess, TestHost, TestNet } from '../../scripts/netns/hosts.ts'
import { meshNodeConfigs, untilReady } from '../../scripts/netns/mesh-nodes.ts'
import { CLI } from './cli.ts'

export interface E2eMesh {
  readonly dir: string
  readonly policyDir: string
  readonly daemons: ReadonlyMap<string, HostProcess>
  /**
   * Access logging off on every host (the level changes on the admin socket only): thousands
   * of lines piped to the test process would load the CPUs latencies are measured on.
   */
  quiet(): Promise<void>
}

/** One Node document per host, with the addresses testNet gave it. */
export function nodeDocs(hosts: readonly TestHost[]): string {
  return hosts.map((h) => `apiVersion: hostmesh.io/v1alpha1\nkind: Node\nmetadata: {name: ${h.name}}\nspec: {addresses: [${h.ipv4}, "${h.ipv6}"]}\n`).join('---\n')
}

export async function startMesh(t: { teardown(fn: () => unknown): void; passing(): boolean; comment(...args: unknown[]): void }, net: TestNet, name: string, policy: string): Promise<E2eMesh> {
  const dir = mkdtempSync(join(tmpdir(), `hostmesh-e2e-${name}-`))
  const policyDir = join(dir, 'policy.d')
  mkdirSync(policyDir)
  writeFileSync(join(policyDir, `10-${name}.yaml`), `${nodeDocs(net.hosts)}---\n${policy}`)
  const configs = await meshNodeConfigs(net.hosts, dir, { policyDir, extra: 'drainSeconds: 1\n' })
  const daemons = new Map<string, HostProcess>()
  for (const h of net.hosts) daemons.set(h.name, h.spawn([process.execPath, CLI, 'run', '--config', configs.get(h.name)!]))
  t.teardown(() => {
    if (t.passing()) return
    for (const [host, d] of daemons) t.comment(`--- ${host}\n${d.output.slice(-4000)}`)
  })
  await Promise.all(net.hosts.map((h) => untilReady(h, daemons.get(h.name)!)))
  return {
    dir, policyDir, daemons,
    quiet: async () => {
      for (const h of net.hosts) await h.mustExec(['curl', '-fsS', '-m', '2', '--unix-socket', join(dir, h.name, 'admin.sock'), '-X', 'POST', 'http://localhost/logging?level=warn'])
    },
  }
}
