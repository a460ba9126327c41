// The demo's mesh, as test/e2e/mesh.test.ts builds it: a copy of policy/examples (plus the
// demo's one Service), a root CA and one node CA per host, the real `hostmesh run` on each
// host with real iptables capture, and the payments servers running as their own uid.
import { cpSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { meshNodeConfigs, untilReady } from '../netns/mesh-nodes.ts'
import { loadPolicy } from '../../policy/pipeline.ts'
import type { Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import { TestNet, type HostProcess, type TestHost } from '../netns/hosts.ts'
import { workloadPrograms, type Programs } from './programs.ts'
import { parseMetrics, type Sample } from './telemetry.ts'
import { DEMO_POLICY, DEMO_POLICY_FILE, scenario, uidOf, type Scenario } from './scenario.ts'

const EXAMPLES = new URL('../../policy/examples/', import.meta.url).pathname
export const CLI = new URL('../../daemon/cli.ts', import.meta.url).pathname
const TRUST_DOMAIN = 'cluster.local'
export const ADMIN_URL = 'http://127.0.0.1:15000'

export interface Mesh {
  readonly net: TestNet
  readonly dir: string
  readonly snapshot: Snapshot
  readonly scenario: Scenario
  readonly programs: Programs
  /** The `hostmesh run` process of each node, by node name. */
  readonly daemons: ReadonlyMap<string, HostProcess>
  /** The workload servers, by workload key. */
  readonly servers: ReadonlyMap<string, HostProcess>
  host(node: string): TestHost
  admin(node: string, path: string): Promise<{ readonly status: number; readonly body: string }>
  /** Runs a workload program on its node, as its uid; its stdout is one JSON line. */
  runAs<T>(w: WorkloadInfo, program: 'client' | 'tally', args: readonly string[]): Promise<T>
  /** Where each daemon's output is now; logsSince() returns what came after. */
  logMark(): ReadonlyMap<string, number>
  logsSince(mark: ReadonlyMap<string, number>): ReadonlyMap<string, string>
  /** Every daemon's /metrics, parsed, by node. */
  metrics(): Promise<ReadonlyMap<string, readonly Sample[]>>
}

/** The policy, checked and compiled offline first: a mistake shows here, not as a daemon that never gets ready. */
export async function preparePolicy(dir: string): Promise<{ policyDir: string; snapshot: Snapshot; scenario: Scenario }> {
  const policyDir = join(dir, 'policy.d')
  cpSync(EXAMPLES, policyDir, { recursive: true })
  writeFileSync(join(policyDir, DEMO_POLICY_FILE), DEMO_POLICY)
  const loaded = await loadPolicy(policyDir, { generation: 1, trustDomain: TRUST_DOMAIN })
  if (!loaded.ok) throw new Error(`the example policy does not load:\n${loaded.problems.map((p) => `  ${p.file}:${p.line}:${p.col}: ${p.key}: ${p.message}`).join('\n')}`)
  return { policyDir, snapshot: loaded.snapshot, scenario: scenario(loaded.snapshot) }
}

/** One test host per policy Node, in address order, so each gets the address policy gives it. */
export function nodeNames(snapshot: Snapshot): string[] {
  return [...snapshot.nodes.values()].sort((a, b) => a.addresses[0]!.localeCompare(b.addresses[0]!, 'en', { numeric: true })).map((n) => n.name)
}

export async function startMesh(net: TestNet, dir: string, policy: { policyDir: string; snapshot: Snapshot; scenario: Scenario }, progress: (msg: string) => void): Promise<Mesh> {
  const { policyDir, snapshot } = policy
  for (const h of net.hosts) {
    const node = snapshot.nodes.get(h.name)
    if (!node?.addresses.includes(h.ipv4)) throw new Error(`policy Node ${h.name} has addresses ${node?.addresses.join(', ')}, but its host has ${h.ipv4}`)
  }
  progress('making the root CA and one node CA per host')
  const configs = await meshNodeConfigs(net.hosts, dir, { policyDir, extra: 'drainSeconds: 1\n', trustDomain: TRUST_DOMAIN })
  const daemons = new Map<string, HostProcess>()
  for (const h of net.hosts) daemons.set(h.name, h.spawn([process.execPath, CLI, 'run', '--config', configs.get(h.name)!]))
  progress(`started hostmesh run on ${net.hosts.map((h) => h.name).join(', ')}; waiting for /ready`)
  const admin = async (node: string, path: string): Promise<{ status: number; body: string }> => {
    const res = await net.host(node).exec(['curl', '-sS', '-m', '2', '-w', '\n%{http_code}', `${ADMIN_URL}${path}`], { timeoutMs: 5000 })
    const cut = res.stdout.lastIndexOf('\n')
    return { status: Number(res.stdout.slice(cut + 1)) || 0, body: res.stdout.slice(0, Math.max(0, cut)) }
  }
  await Promise.all(net.hosts.map((h) => untilReady(h, daemons.get(h.name)!)))

  const sc = policy.scenario
  const programs = await workloadPrograms([...new Set([sc.caller, sc.intruder, ...sc.servers.map((s) => s.workload)].map(uidOf))])
  const servers = new Map<string, HostProcess>()
  for (const { workload, port } of sc.servers) {
    const p = net.host(workload.node).spawn([programs.node, programs.server, workload.name, String(port)], { uid: uidOf(workload) })
    servers.set(workload.key, p)
    await p.waitFor(/listening/)
  }
  progress(`${[...servers.keys()].join(', ')} listening`)
  return {
    net, dir, snapshot, scenario: sc, programs, daemons, servers, admin,
    host: (node) => net.host(node),
    runAs: async <T>(w: WorkloadInfo, program: 'client' | 'tally', args: readonly string[]): Promise<T> =>
      JSON.parse(await net.host(w.node).mustExec([programs.node, programs[program], ...args], { uid: uidOf(w), timeoutMs: 60_000 })) as T,
    logMark: () => new Map([...daemons].map(([node, d]) => [node, d.output.length])),
    logsSince: (mark) => new Map([...daemons].map(([node, d]) => [node, d.output.slice(mark.get(node) ?? 0)])),
    metrics: async () => new Map(await Promise.all(net.hosts.map(async (h) => {
      const res = await admin(h.name, '/metrics')
      if (res.status !== 200) throw new Error(`${h.name} /metrics answered ${res.status}`)
      return [h.name, parseMetrics(res.body)] as const
    }))),
  }
}

