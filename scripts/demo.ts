// `npm run demo`: three namespace hosts running the mesh end to end, then a report of what
// happened, measured (see scripts/demo/args.ts for flags and exit codes). Everything it makes
// (namespaces with their links and iptables rules, processes, the temp dir) is removed on a
// normal exit, on an error and on Ctrl-C/SIGTERM/SIGHUP; a run killed by SIGKILL is cleaned
// up by the next run of the demo or of the e2e tests (scripts/netns/hosts.ts).
import { execFileSync } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { Snapshot } from '../policy/snapshot.ts'
import { TestNet } from './netns/hosts.ts'
import { demoArgs, EXIT, USAGE } from './demo/args.ts'
import { nodeNames, preparePolicy, startMesh, type Mesh } from './demo/mesh.ts'
import { renderText, type DemoReport } from './demo/report.ts'
import { runStep, type StepReport } from './demo/step.ts'
import { adminPorts } from './demo/steps/admin.ts'
import { canary } from './demo/steps/canary.ts'
import { deny } from './demo/steps/deny.ts'
import { failover } from './demo/steps/failover.ts'
import { mtlsCall } from './demo/steps/mtls-call.ts'
import { whoTalked } from './demo/talks.ts'

const TOOLS = ['ip', 'iptables', 'ip6tables', 'tcpdump', 'curl', 'setpriv']
const SIGNALS = { SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const

const args = demoArgs(process.argv.slice(2))
if ('error' in args) {
  process.stderr.write(`hostmesh demo: ${args.error}\n\n${USAGE}`)
  process.exit(EXIT.usage)
}
if (args.help) {
  process.stdout.write(USAGE)
  process.exit(EXIT.ok)
}
if (process.getuid?.() !== 0) {
  process.stderr.write('hostmesh demo: needs root: it creates network namespaces, iptables rules and processes running as other uids.\nRun it as root, e.g. `sudo npm run demo`.\n')
  process.exit(EXIT.notRoot)
}
const missing = TOOLS.filter((t) => {
  try {
    execFileSync('sh', ['-c', `command -v ${t}`], { stdio: 'ignore' })
    return false
  } catch {
    return true
  }
})
if (missing.length > 0) {
  // The README's first command must work on a fresh Debian machine: install what is missing.
  const packages = 'iproute2 iptables tcpdump curl util-linux'
  process.stderr.write(`hostmesh demo: missing ${missing.join(', ')}; installing ${packages} with apt-get\n`)
  try {
    execFileSync('apt-get', ['install', '-y', '--no-install-recommends', ...packages.split(' ')], { stdio: ['ignore', 2, 2], env: { ...process.env, DEBIAN_FRONTEND: 'noninteractive' } })
  } catch {
    process.stderr.write(`hostmesh demo: could not install them; run: apt-get update && apt-get install -y ${packages}\n`)
    process.exit(EXIT.failed)
  }
}

const started = Date.now()
const progress = (msg: string): void => void process.stderr.write(`demo: ${msg}\n`)
const dir = mkdtempSync(join(tmpdir(), 'hostmesh-demo-'))
let net: TestNet | undefined
/** Known once the report is out: what a Ctrl-C during --keep exits with. */
let result: number | undefined
process.on('exit', () => rmSync(dir, { recursive: true, force: true }))
// Registered before TestNet installs its own handlers, so this one runs first: it removes
// everything (synchronously, as TestNet's would) and exits with the demo's own code.
for (const signal of Object.keys(SIGNALS) as (keyof typeof SIGNALS)[]) {
  process.on(signal, () => {
    net?.destroySync()
    rmSync(dir, { recursive: true, force: true })
    progress(result === undefined ? `interrupted (${signal}): removed everything the demo made` : 'stopped: removed everything the demo made')
    process.exit(result ?? 128 + SIGNALS[signal])
  })
}

let mesh: Mesh | undefined
let snapshot: Snapshot | undefined
const steps: StepReport[] = []
const setup = await runStep('setup', 'Three hosts, a root CA and node CAs, `hostmesh run` on each', async () => {
  const policy = await preparePolicy(dir)
  snapshot = policy.snapshot
  progress(`building hosts ${nodeNames(policy.snapshot).join(', ')} (network namespaces on a private bridge)`)
  net = await TestNet.create({ hosts: nodeNames(policy.snapshot) })
  mesh = await startMesh(net, dir, policy, progress)
  const m = mesh
  return {
    data: null, problems: [],
    lines: [
      `hosts: ${net.hosts.map((h) => `${h.name} ${h.ipv4}`).join(', ')}; a node CA each under one root (trust domain ${m.snapshot.trustDomain})`,
      `hostmesh ready on every host (/ready 200); workload servers: ${m.scenario.servers.map((s) => `${s.workload.name} on ${s.workload.node}`).join(', ')}${m.programs.copied ? ' (Node and the workload scripts run from readable copies in the temp dir: their uids cannot read this checkout)' : ''}`,
    ],
  }
})
steps.push(setup.report)
type Measured = Pick<DemoReport, 'call' | 'wire' | 'canary' | 'deny' | 'failover' | 'admin' | 'talks'>
let measured: Measured = { call: null, wire: null, canary: null, deny: null, failover: null, admin: [], talks: [] }
if (mesh) {
  const m: Mesh = mesh
  progress('1/5 mTLS call across hosts, with tcpdump on the wire')
  const call = await runStep('mtls-call', 'mTLS call across hosts', () => mtlsCall(m))
  progress('2/5 TCPRoute canary')
  const split = await runStep('canary', `TCPRoute canary ${m.scenario.canary.backends.map((b) => b.weight).join('/')}`, () => canary(m))
  progress('3/5 authorization deny')
  const denied = await runStep('deny', 'Authorization deny', () => deny(m))
  progress('4/5 failover')
  const fo = await runStep('failover', 'Failover when an endpoint stops', () => failover(m))
  progress('5/5 admin ports')
  const admin = await runStep('admin', 'Admin ports', () => adminPorts(m))
  steps.push(call.report, split.report, denied.report, fo.report, admin.report)
  measured = {
    call: call.data?.call ?? null, wire: call.data?.wire ?? null, canary: split.data, deny: denied.data, failover: fo.data, admin: admin.data ?? [],
    talks: whoTalked(m.logsSince(new Map())),
  }
}

const failedSteps = steps.filter((s) => !s.ok).map((s) => s.name)
const report: DemoReport = {
  ok: failedSteps.length === 0, failedSteps, durationMs: Date.now() - started,
  runId: net?.runId ?? '', namespaces: net ? [net.switchNs, ...net.hosts.map((h) => h.netns)] : [], workDir: dir,
  pids: mesh ? [...mesh.daemons.values(), ...mesh.servers.values()].map((p) => p.pid) : [],
  hosts: net?.hosts.map((h) => ({
    node: h.name, netns: h.netns, ipv4: h.ipv4,
    workloads: [...(snapshot?.workloads.values() ?? [])].filter((w) => w.node === h.name).map((w) => `${w.name} (uid ${w.match.uid})`),
  })) ?? [],
  steps, ...measured, kept: args.keep && mesh !== undefined,
}
process.stdout.write(args.json ? `${JSON.stringify(report, null, 2)}\n` : renderText(report))
result = report.ok ? EXIT.ok : EXIT.failed

if (report.kept) {
  progress(`everything stays up (${mesh?.scenario.failover.stopped.name} stays stopped after the failover step); Ctrl-C removes it all and exits`)
  setInterval(() => undefined, 60_000)
} else {
  await net?.destroy()
  rmSync(dir, { recursive: true, force: true })
  progress(`removed everything the demo made (${report.namespaces.length} namespaces, their processes and iptables rules, ${dir})`)
  process.exit(result)
}
