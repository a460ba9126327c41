// HTTP/1.1 keep-alive through the mesh against direct, on the same two namespace hosts as the
// mesh bench (each runs the real `hostmesh run`, own node CA, real iptables capture), interleaved
// in one run. The mesh path is the full L7 path on both hosts: a client workload (uid 3001,
// node-a) calls a Service VIP's http port → capture → HTTPRoute → endpoint → pooled HBONE →
// node-b's destination authorize → the server workload (uid 3002: nginx, else a node server)
// over a keep-alive pool. Direct: root on node-a (never captured) to a second port of the same
// server that no rule redirects. Measures: req/s at 64 connections (wrk); latency at a fixed
// 1,000 req/s, twice: h2load --rps (its 16 clients send in step, so bursts of 16) and
// rate-client.ts (evenly spaced, open loop, timed from each request's due time); each daemon's
// CPU per 1,000 requests and RSS. Then issue #13's stage cost (http-mesh-stages.ts): an empty
// route against one with timeouts, retry, a breaker and a rate limit that never trigger. Then
// once more with both daemons under --cpu-prof, and the top self-time functions of each.
// Needs root, wrk and h2load (--only stages: wrk). Raw results go to scripts/bench/results/.
// Options (after the bench's name: `npm run bench -- http-mesh --only stages --seconds 3`):
//   --only mesh|stages   only the mesh-vs-direct part (with its profile), or only the stage cost
//   --seconds N          each measured run (default 5)
//   --rounds N           rounds of the mesh-vs-direct part (default 3)
//   --stage-rounds N     rounds of the stage cost (default 5)
//   --profile-seconds N  each profiled run (default 10; 0: no profile of the mesh part)
//   --profile-stages GET|POST  profile the stage cost too: bare, then stages, each in daemons
//                        started afresh under --cpu-prof, and where the difference lies
//   --no-post            the stage cost with GET only
import { execFile } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { readFile, rm } from 'node:fs/promises'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs, promisify } from 'node:util'
import { parseMetrics, total } from '../demo/telemetry.ts'
import { meshNodeConfigs, untilReady } from '../netns/mesh-nodes.ts'
import { withTestNet, type HostProcess, type TestHost } from '../netns/hosts.ts'
import { machineLine, writeResults } from './results.ts'
import { summariseFile, type ProfileSummary } from './cpuprofile-summary.ts'
import { checkStagesInForce, measureStages, profileStages, reportStageProfiles, reportStages, stagesPolicy, STAGES_PORT, STAGES_VIP, type Method, type StageProfiles, type StagesOutcome } from './http-mesh-stages.ts'
import { median, percentile } from './stats.ts'
import { nginxConf } from './nginx-conf.ts'

const execFileP = promisify(execFile)
const here = (f: string): string => new URL(f, import.meta.url).pathname
const CLI = here('../../daemon/cli.ts')
const NODE = process.execPath

const CONNS = 64
const RATE = 1000
const RATE_CONNS = 16
const CLIENT_UID = 3001
const SERVER_UID = 3002
const VIP = '10.96.1.2'
const PORT = 8080 // the workload's http port: captured on node-b, reached through the mesh
const DIRECT_PORT = 8081 // same server, no rule redirects it
const BODY = Buffer.alloc(1024, 'x')
const IDLE_MS = 15_000
const LOG_LEVEL = 'warn' // no access log: its cost depends on where the lines go

const V = 'apiVersion: hostmesh.io/v1alpha1\n'
const POLICY = [
  `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [10.77.0.11]}\n`,
  `${V}kind: Node\nmetadata: {name: node-b}\nspec: {addresses: [10.77.0.12]}\n`,
  `${V}kind: Workload\nmetadata: {name: client, namespace: bench}\nspec: {node: node-a, serviceAccount: client, match: {uid: ${CLIENT_UID}}}\n`,
  `${V}kind: Workload\nmetadata: {name: server, namespace: bench, labels: {app: server}}\nspec: {node: node-b, serviceAccount: server, match: {uid: ${SERVER_UID}}, ports: [{name: http, port: ${PORT}}, {name: http-stages, port: ${STAGES_PORT}}]}\n`,
  `${V}kind: Service\nmetadata: {name: server, namespace: bench}\nspec: {addresses: [${VIP}], ports: [{name: http, port: 80, protocol: http, targetPort: ${PORT}}], selector: {app: server}}\n`,
  `${V}kind: HTTPRoute\nmetadata: {name: server, namespace: bench}\nspec:\n  parentRefs: [{name: server, port: 80}]\n  rules: [{backendRefs: [{name: server, port: 80}]}]\n`,
  ...stagesPolicy(V, 'bench'),
].join('---\n')

const NGINX_CONF = (dir: string): string => nginxConf(dir, [PORT, DIRECT_PORT, STAGES_PORT], {
  workerConnections: 1024,
  // The stage cost's POST variant: the static module refuses POST with 405; serve the file.
  serverExtra: '    error_page 405 =200 $uri;\n',
})

type Path = 'direct' | 'mesh'
export type Daemon = 'source' | 'destination'
export interface Wrk { requests: number; seconds: number; errors: number; non2xx: number; p50ms: number; p99ms: number }
interface Fixed { requests: number; failed: number; non2xx: number; seconds: number; rate: number; p50ms: number; p90ms: number; p99ms: number; maxms: number; [more: string]: number }
/** A load and what each daemon's CPU did meanwhile (utime + stime; stime alone). */
export interface Measured<T> { result: T; daemonCpuSeconds: Record<Daemon, number>; daemonSystemSeconds: Record<Daemon, number> }
interface Run<T> extends Measured<T> { round: number; path: Path }

export interface HttpMeshOptions { only?: 'mesh' | 'stages'; seconds: number; rounds: number; stageRounds: number; profileSeconds: number; post: boolean; profileStages?: Method }

export function httpMeshOptions(args: readonly string[]): HttpMeshOptions {
  const { values } = parseArgs({
    args: [...args], strict: true, allowPositionals: false,
    options: { only: { type: 'string' }, seconds: { type: 'string' }, rounds: { type: 'string' }, 'stage-rounds': { type: 'string' }, 'profile-seconds': { type: 'string' }, 'no-post': { type: 'boolean' }, 'profile-stages': { type: 'string' } },
  })
  const num = (name: string, v: string | undefined, dflt: number, min: number): number => {
    if (v === undefined) return dflt
    const n = Number(v)
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} takes a whole number ≥ ${min}, not "${v}"`)
    return n
  }
  if (values.only !== undefined && values.only !== 'mesh' && values.only !== 'stages') throw new Error(`--only takes mesh or stages, not "${values.only}"`)
  const ps = values['profile-stages']
  if (ps !== undefined && ps !== 'GET' && ps !== 'POST') throw new Error(`--profile-stages takes GET or POST, not "${ps}"`)
  if (ps === 'POST' && values['no-post']) throw new Error('--profile-stages POST with --no-post')
  if (ps !== undefined && values.only === 'mesh') throw new Error('--profile-stages with --only mesh')
  return {
    ...(values.only ? { only: values.only } : {}),
    ...(ps ? { profileStages: ps } : {}),
    seconds: num('seconds', values.seconds, 5, 1),
    rounds: num('rounds', values.rounds, 3, 1),
    // Medians of at least 3; 5 by default because the goal (≤ 10%) is within this machine's spread.
    stageRounds: num('stage-rounds', values['stage-rounds'], 5, 3),
    profileSeconds: num('profile-seconds', values['profile-seconds'], 10, 0),
    post: !values['no-post'],
  }
}
export type Profile = ProfileSummary & { file: string }
/** A load on daemons started afresh under --cpu-prof, and each daemon's profile: of the whole session (and then warmRequests is the warm-up's requests), or of the load alone (warmRequests 0). */
export interface Profiled { load: Wrk; warmRequests: number; profiles: Record<Daemon, Profile>; /** Each daemon's CPU time (/proc) during the load. */ loadCpuSeconds: Record<Daemon, number> }
interface Metrics { requests: number; ok: number; /** by "code flags" */ other: Record<string, number>; heapUsedMiB: number; heapTotalMiB: number }

async function version(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const { stdout, stderr } = await execFileP(cmd, args)
    return `${stdout}${stderr}`.trim().split('\n')[0]
  } catch (e) {
    const err = e as { code?: unknown; stdout?: string; stderr?: string }
    return err.code === 'ENOENT' ? undefined : `${err.stdout ?? ''}${err.stderr ?? ''}`.trim().split('\n')[0] || cmd
  }
}

let clockTicks = 100
/** A process's CPU time so far (utime + stime) and the kernel's part of it (stime), in seconds. */
async function cpuSeconds(pid: number): Promise<{ all: number; system: number }> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // f[0] is field 3 (state)
  return { all: (Number(f[11]) + Number(f[12])) / clockTicks, system: Number(f[12]) / clockTicks }
}

async function rssMiB(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))
  return m ? Math.round(Number(m[1]) / 1024) : NaN
}

async function loadavg(): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
}

/** The daemon's own pid: `ip netns exec` execs node in place, so the spawned pid is node's. */
async function daemonPid(d: HostProcess): Promise<number> {
  const argv = (await readFile(`/proc/${d.pid}/cmdline`, 'utf8')).split('\0')
  if (argv[0] === 'ip' || !argv.includes(CLI)) throw new Error(`pid ${d.pid} runs "${argv.join(' ')}", not the daemon`)
  return d.pid
}

export async function benchHttpMesh(args: readonly string[] = []): Promise<void> {
  const opts = httpMeshOptions(args)
  const [meshPart, stagesPart] = [opts.only !== 'stages', opts.only !== 'mesh']
  const [wrkV, h2loadV, nginxV] = [await version('wrk', ['-v']), await version('h2load', ['--version']), await version('nginx', ['-v'])]
  if (!wrkV || (meshPart && !h2loadV)) {
    console.log(`SKIPPED: needs wrk${meshPart ? ' and h2load' : ''} (apt-get install -y wrk nghttp2-client); found wrk: ${wrkV ? 'yes' : 'no'}, h2load: ${h2loadV ? 'yes' : 'no'}`)
    return
  }
  clockTicks = Number((await execFileP('getconf', ['CLK_TCK'])).stdout.trim()) || 100
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-bench-http-mesh-'))
  // What the workload uids write (nginx's prefix, h2load's per-request log): a tree they can enter.
  const io = mkdtempSync(join(tmpdir(), 'hostmesh-bench-http-mesh-io-'))
  try {
    chmodSync(io, 0o755)
    const nginxDir = join(io, 'nginx')
    const logDir = join(io, 'logs')
    for (const d of [nginxDir, join(nginxDir, 'tmp'), join(nginxDir, 'www')]) { mkdirSync(d); chownSync(d, SERVER_UID, SERVER_UID) }
    writeFileSync(join(nginxDir, 'www', '1k'), BODY, { mode: 0o644 })
    writeFileSync(join(nginxDir, 'nginx.conf'), NGINX_CONF(nginxDir), { mode: 0o644 })
    mkdirSync(logDir)
    chownSync(logDir, CLIENT_UID, CLIENT_UID)
    mkdirSync(join(dir, 'policy.d'))
    writeFileSync(join(dir, 'policy.d', 'policy.yaml'), POLICY)
    const loadBefore = await loadavg()

    await withTestNet({ hosts: ['node-a', 'node-b'] }, async (net) => {
      const [a, b] = [net.host('node-a'), net.host('node-b')]
      const configs = await meshNodeConfigs(net.hosts, dir, { policyDir: join(dir, 'policy.d'), ipv6: false, extra: `logLevel: ${LOG_LEVEL}\ndrainSeconds: 1\n` })
      const start = async (h: TestHost, flags: string[] = []): Promise<HostProcess> => {
        const d = h.spawn([NODE, ...flags, CLI, 'run', '--config', configs.get(h.name)!])
        await untilReady(h, d)
        return d
      }
      let src = await start(a)
      let dst = await start(b)
      const pids = { source: await daemonPid(src), destination: await daemonPid(dst) }
      const rssAtStart = { source: await rssMiB(pids.source), destination: await rssMiB(pids.destination) }

      const server = nginxV
        ? b.spawn(['nginx', '-p', nginxDir, '-c', join(nginxDir, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'], { uid: SERVER_UID, gid: SERVER_UID })
        : b.spawn([NODE, here('./http-mesh-server.ts'), String(PORT), String(DIRECT_PORT), String(STAGES_PORT)], { uid: SERVER_UID, gid: SERVER_UID })
      for (let i = 0; i < 100; i++) {
        const r = await b.exec(['curl', '-sS', '-m', '1', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${DIRECT_PORT}/1k`], { timeoutMs: 5000 })
        if (r.stdout === '200') break
        if (!server.running || i === 99) throw new Error(`the server on node-b did not answer: ${server.output.slice(-2000)}`)
        await sleep(100)
      }

      const url = (path: Path): string => (path === 'mesh' ? `http://${VIP}/1k` : `http://${b.ipv4}:${DIRECT_PORT}/1k`)
      const as = (path: Path): { uid: number; gid: number } => (path === 'mesh' ? { uid: CLIENT_UID, gid: CLIENT_UID } : { uid: 0, gid: 0 })
      const checks: Array<[string, string[]]> = [[url('mesh'), []]]
      if (stagesPart) checks.push([`http://${STAGES_VIP}/1k`, []], [`http://${STAGES_VIP}/1k`, ['--data-binary', BODY.toString()]], [url('mesh'), ['--data-binary', BODY.toString()]])
      for (const [target, extra] of checks) {
        const check = await a.mustExec(['curl', '-sS', '-m', '5', '-i', ...extra, target], as('mesh'))
        if (!check.startsWith('HTTP/1.1 200') || !check.endsWith(BODY.toString())) {
          await sleep(1000) // the daemons' last lines
          throw new Error(`${extra.length > 0 ? 'a POST' : 'a request'} through the mesh to ${target} did not get 200 with 1 KiB:\n${check.slice(0, 2000)}\n--- node-a\n${src.output.slice(-3000)}\n--- node-b\n${dst.output.slice(-3000)}\n--- server\n${server.output.slice(-2000)}`)
        }
      }
      if (stagesPart) await checkStagesInForce({ source: a, destination: b })

      const wrkAt = async (target: string, seconds: number, who: { uid: number; gid: number }, method: Method = 'GET'): Promise<Wrk> => {
        const script = here(method === 'POST' ? './wrk-post-1k.lua' : './wrk-report.lua')
        const out = await a.mustExec(['wrk', '-t2', `-c${CONNS}`, `-d${seconds}s`, '--timeout', '5s', '-s', script, target], { ...who, timeoutMs: (seconds + 30) * 1000 })
        return JSON.parse(out.trim().split('\n').at(-1)!) as Wrk
      }
      const wrk = (path: Path, seconds: number): Promise<Wrk> => wrkAt(url(path), seconds, as(path))
      let logs = 0
      // h2load paces each client at --rps and logs each request's start and duration; the
      // percentiles come from that log. Its clients start together and keep in step, so the
      // load arrives as 16 requests at once every 16 ms. A request is timed from when it is
      // sent: one due while its connection still waits for the previous response is sent late
      // and its wait is not counted; `slowerThanInterval` (responses slower than 16 ms) bounds
      // how often that can happen.
      const bursts = async (path: Path, seconds: number): Promise<Fixed> => {
        const log = join(logDir, `${path}-${logs++}.log`)
        const out = await a.mustExec(['h2load', '--h1', `-c${RATE_CONNS}`, `--rps=${RATE / RATE_CONNS}`, '-D', String(seconds), `--log-file=${log}`, url(path)], { ...as(path), timeoutMs: (seconds + 30) * 1000 })
        const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(out)
        const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out)
        if (!req || !codes) throw new Error(`h2load output not understood:\n${out}`)
        const lines = (await readFile(log, 'utf8')).trim().split('\n').map((l) => l.split('\t').map(Number))
        await rm(log, { force: true })
        const ok = lines.filter((l) => l[1] === 200).map((l) => l[2]! / 1000)
        if (ok.length === 0) throw new Error(`h2load: no successful request to ${url(path)}:\n${out}`)
        const starts = lines.map((l) => l[0]!)
        const span = (Math.max(...starts) - Math.min(...starts)) / 1e6
        const interval = (1000 * RATE_CONNS) / RATE
        return {
          requests: ok.length, failed: Number(req[5]), non2xx: Number(codes[2]) + Number(codes[3]) + Number(codes[4]),
          seconds: span, rate: ok.length / span,
          p50ms: percentile(ok, 0.5), p90ms: percentile(ok, 0.9), p99ms: percentile(ok, 0.99), maxms: Math.max(...ok),
          slowerThanInterval: ok.filter((ms) => ms > interval).length,
        }
      }
      const even = async (path: Path, seconds: number): Promise<Fixed> =>
        JSON.parse(await a.mustExec([NODE, here('./rate-client.ts'), url(path), String(RATE), String(seconds), String(RATE_CONNS)], { ...as(path), timeoutMs: (seconds + 30) * 1000 })) as Fixed
      const measure = async <T>(f: () => Promise<T>): Promise<Measured<T>> => {
        const c0 = { source: await cpuSeconds(pids.source), destination: await cpuSeconds(pids.destination) }
        const result = await f()
        const c1 = { source: await cpuSeconds(pids.source), destination: await cpuSeconds(pids.destination) }
        return {
          result,
          daemonCpuSeconds: { source: c1.source.all - c0.source.all, destination: c1.destination.all - c0.destination.all },
          daemonSystemSeconds: { source: c1.source.system - c0.source.system, destination: c1.destination.system - c0.destination.system },
        }
      }
      const measured = async <T>(round: number, path: Path, f: () => Promise<T>): Promise<Run<T>> => ({ round, path, ...(await measure(f)) })
      const runStages = (): Promise<StagesOutcome> => measureStages({
        hosts: { source: a, destination: b }, bareVip: VIP, measure,
        wrk: (target, seconds, method) => wrkAt(target, seconds, as('mesh'), method),
      }, { seconds: opts.seconds, rounds: opts.stageRounds, post: opts.post })

      // Both daemons restarted under the profiler (node writes the profile on a clean exit),
      // 1 s of warm-up and `seconds` of wrk; the profiles are kept in a temp dir for a closer look.
      // `loadOnly`: summarise only the samples taken while the measured wrk ran (no start, warm-up
      // or stop), so that two sessions compare per request.
      const profiledRun = async (target: string, method: Method, seconds: number, top: number, loadOnly = false): Promise<Profiled> => {
        const profDir = mkdtempSync(join(tmpdir(), 'hostmesh-bench-http-mesh-prof-'))
        await src.stop('SIGTERM', 20_000)
        await dst.stop('SIGTERM', 20_000)
        src = await start(a, ['--cpu-prof', `--cpu-prof-dir=${join(profDir, 'source')}`])
        dst = await start(b, ['--cpu-prof', `--cpu-prof-dir=${join(profDir, 'destination')}`])
        const warm = await wrkAt(target, 1, as('mesh'), method)
        const profiledPids = { source: await daemonPid(src), destination: await daemonPid(dst) }
        const cpu0 = { source: await cpuSeconds(profiledPids.source), destination: await cpuSeconds(profiledPids.destination) }
        const startUs = Number(process.hrtime.bigint() / 1000n)
        const load = await wrkAt(target, seconds, as('mesh'), method)
        const window = { startUs, endUs: Number(process.hrtime.bigint() / 1000n) }
        const cpu1 = { source: await cpuSeconds(profiledPids.source), destination: await cpuSeconds(profiledPids.destination) }
        const exits = { source: await src.stop('SIGTERM', 20_000), destination: await dst.stop('SIGTERM', 20_000) }
        const profile = async (who: Daemon): Promise<Profile> => {
          const d = join(profDir, who)
          const f = readdirSync(d).find((n) => n.endsWith('.cpuprofile'))
          if (!f) throw new Error(`no .cpuprofile from the ${who} daemon (exit ${JSON.stringify(exits[who])})`)
          return { file: join(d, f), ...(await summariseFile(join(d, f), top, loadOnly ? window : undefined)) }
        }
        return {
          load, warmRequests: loadOnly ? 0 : warm.requests, profiles: { source: await profile('source'), destination: await profile('destination') },
          loadCpuSeconds: { source: cpu1.source.all - cpu0.source.all, destination: cpu1.destination.all - cpu0.destination.all },
        }
      }
      const runStageProfiles = (method: Method): Promise<StageProfiles> => profileStages({ bareVip: VIP, profile: (target, seconds) => profiledRun(target, method, seconds, 400, true) }, method, opts.profileSeconds || 10)

      if (!meshPart) {
        const stages = await runStages()
        const stageProfiles = opts.profileStages ? await runStageProfiles(opts.profileStages) : undefined
        await server.stop()
        await report({ opts, wrkV, h2loadV, nginxV, stages, ...(stageProfiles ? { stageProfiles } : {}), load: { before: loadBefore, after: await loadavg() } })
        return
      }

      // Warm-up: the HBONE session, the pools on both hosts, the JIT.
      for (const path of ['direct', 'mesh'] as const) { await wrk(path, 2); await bursts(path, 2); await even(path, 2) }
      const loads: Array<Run<Wrk>> = []
      const burstRuns: Array<Run<Fixed>> = []
      const evenRuns: Array<Run<Fixed>> = []
      for (let round = 0; round < opts.rounds; round++) {
        const order: Path[] = round % 2 === 0 ? ['direct', 'mesh'] : ['mesh', 'direct']
        for (const path of order) loads.push(await measured(round, path, () => wrk(path, opts.seconds)))
        for (const path of order) burstRuns.push(await measured(round, path, () => bursts(path, opts.seconds)))
        for (const path of order) evenRuns.push(await measured(round, path, () => even(path, opts.seconds)))
      }
      const rssAfter = { source: await rssMiB(pids.source), destination: await rssMiB(pids.destination) }
      const metric = async (h: TestHost, reporter: string): Promise<Metrics> => {
        const samples = parseMetrics(await h.mustExec(['curl', '-sS', '-m', '2', 'http://127.0.0.1:15000/metrics']))
        const other: Record<string, number> = {}
        for (const x of samples) {
          if (x.name !== 'istio_requests_total' || x.labels.reporter !== reporter || x.labels.response_code === '200') continue
          const k = `${x.labels.response_code} ${x.labels.response_flags}`
          other[k] = (other[k] ?? 0) + x.value
        }
        const mib = (name: string): number => Math.round(total(samples, name) / 2 ** 20)
        return { requests: total(samples, 'istio_requests_total', { reporter }), ok: total(samples, 'istio_requests_total', { reporter, response_code: '200' }), other, heapUsedMiB: mib('nodejs_heap_size_used_bytes'), heapTotalMiB: mib('nodejs_heap_size_total_bytes') }
      }
      const metrics = { source: await metric(a, 'source'), destination: await metric(b, 'destination') }
      // The daemon gives pooled heap back once the data plane has been quiet a while (run/memory.ts).
      await sleep(IDLE_MS)
      const rssIdle = { source: await rssMiB(pids.source), destination: await rssMiB(pids.destination) }
      const stages = stagesPart ? await runStages() : undefined
      const stageProfiles = opts.profileStages ? await runStageProfiles(opts.profileStages) : undefined

      // Once more under the profiler: the load the first table measures, at 64 connections.
      const profiled = opts.profileSeconds > 0 ? await profiledRun(url('mesh'), 'GET', opts.profileSeconds, 15) : undefined
      await server.stop()

      const mesh: MeshOutcome = { loads, burstRuns, evenRuns, rssAtStart, rssAfter, rssIdle, metrics, ...(profiled ? { profiled } : {}) }
      await report({ opts, wrkV, h2loadV, nginxV, mesh, ...(stages ? { stages } : {}), ...(stageProfiles ? { stageProfiles } : {}), load: { before: loadBefore, after: await loadavg() } })
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
    rmSync(io, { recursive: true, force: true })
  }
}

interface MeshOutcome {
  loads: Array<Run<Wrk>>; burstRuns: Array<Run<Fixed>>; evenRuns: Array<Run<Fixed>>
  rssAtStart: Record<Daemon, number>; rssAfter: Record<Daemon, number>; rssIdle: Record<Daemon, number>
  metrics: Record<Daemon, Metrics>
  profiled?: Profiled
}

interface Outcome {
  opts: HttpMeshOptions
  wrkV: string; h2loadV: string | undefined; nginxV: string | undefined
  mesh?: MeshOutcome
  stages?: StagesOutcome
  stageProfiles?: StageProfiles
  load: { before: string; after: string }
}

const PATHS = ['direct', 'mesh'] as const
const DAEMONS = ['source', 'destination'] as const

function latencySummary(runs: Array<Run<Fixed>>): Array<Record<string, number | string>> {
  return PATHS.map((path) => {
    const rs = runs.filter((r) => r.path === path).map((r) => r.result)
    const m = (k: string): number => median(rs.map((x) => x[k] ?? NaN))
    return { path, rate: m('rate'), p50ms: m('p50ms'), p90ms: m('p90ms'), p99ms: m('p99ms'), maxms: Math.max(...rs.map((x) => x.maxms)), failed: rs.reduce((s, x) => s + x.failed + x.non2xx, 0) }
  })
}

const rate = (r: Wrk): number => r.requests / r.seconds

/** Prints the mesh-vs-direct tables and returns their summary for the raw JSON. */
function reportMesh(o: MeshOutcome, opts: HttpMeshOptions): Record<string, unknown> {
  const { seconds, rounds } = opts
  const meshOnly = <T>(runs: Array<Run<T>>): Array<Run<T>> => runs.filter((r) => r.path === 'mesh')
  const perK = <T>(runs: Array<Run<T>>, n: (t: T) => number, who: Daemon): number => median(runs.map((r) => (r.daemonCpuSeconds[who] / n(r.result)) * 1000))
  const f2 = (x: number | string | undefined): string => Number(x).toFixed(2)
  const tp = PATHS.map((path) => {
    const rs = o.loads.filter((r) => r.path === path)
    const rates = rs.map((r) => rate(r.result))
    return { path, median: median(rates), min: Math.min(...rates), max: Math.max(...rates), rates: rates.map(Math.round), p50ms: median(rs.map((r) => r.result.p50ms)), p99ms: median(rs.map((r) => r.result.p99ms)), errors: rs.reduce((s, r) => s + r.result.errors + r.result.non2xx, 0) }
  })
  const lat = { even: latencySummary(o.evenRuns), bursts: latencySummary(o.burstRuns) }
  const cpu = DAEMONS.map((who) => ({
    who,
    at64Connections: perK(meshOnly(o.loads), (r) => r.requests, who),
    at1000Even: perK(meshOnly(o.evenRuns), (r) => r.requests, who),
    at1000Bursts: perK(meshOnly(o.burstRuns), (r) => r.requests, who),
    kernelShareAt64: median(meshOnly(o.loads).map((r) => r.daemonSystemSeconds[who] / r.daemonCpuSeconds[who])),
    rssStartMiB: o.rssAtStart[who], rssAfterMiB: o.rssAfter[who], heapUsedAfterMiB: o.metrics[who].heapUsedMiB, rssIdleMiB: o.rssIdle[who],
  }))
  const [d, m] = [tp[0]!, tp[1]!]
  const ratios = (l: Array<Record<string, number | string>>): Record<string, number> => {
    const [ld, lm] = [l[0]!, l[1]!]
    return { p50: Number(lm.p50ms) / Number(ld.p50ms), p90: Number(lm.p90ms) / Number(ld.p90ms), p99: Number(lm.p99ms) / Number(ld.p99ms) }
  }

  console.log(`req/s at ${CONNS} keep-alive connections (wrk -t2 -c${CONNS} -d${seconds}s), ${rounds} rounds interleaved:\n`)
  console.log(`| path | req/s (median of ${rounds}) | min | max | p50 ms | p99 ms | errors |`)
  console.log('|---|---|---|---|---|---|---|')
  for (const r of tp) console.log(`| ${r.path} | ${r.median.toFixed(0)} | ${r.min.toFixed(0)} | ${r.max.toFixed(0)} | ${f2(r.p50ms)} | ${f2(r.p99ms)} | ${r.errors} |`)
  console.log(`\nmesh/direct req/s: ${(m.median / d.median).toFixed(3)}\n`)
  console.log(`latency at a fixed ${RATE} req/s over ${RATE_CONNS} connections, ${seconds} s, medians of ${rounds} rounds:`)
  console.log(`- evenly spaced: scripts/bench/rate-client.ts, open loop, timed from each request's due time`)
  console.log(`- bursts: h2load --h1 -c${RATE_CONNS} --rps=${RATE / RATE_CONNS} -D ${seconds} (16 requests at once every 16 ms), timed from sending\n`)
  console.log('| load | path | req/s | p50 ms | p90 ms | p99 ms | max ms | failed |')
  console.log('|---|---|---|---|---|---|---|---|')
  for (const [name, l] of [['evenly spaced', lat.even], ['bursts of 16', lat.bursts]] as const) {
    for (const r of l) console.log(`| ${name} | ${r.path} | ${Number(r.rate).toFixed(0)} | ${f2(r.p50ms)} | ${f2(r.p90ms)} | ${f2(r.p99ms)} | ${f2(r.maxms)} | ${r.failed} |`)
    const [ld, lm] = [l[0]!, l[1]!]
    console.log(`| ${name} | added by the mesh | | ${f2(Number(lm.p50ms) - Number(ld.p50ms))} | ${f2(Number(lm.p90ms) - Number(ld.p90ms))} | ${f2(Number(lm.p99ms) - Number(ld.p99ms))} | | |`)
  }
  const slow = meshOnly(o.burstRuns).reduce((s, r) => s + (r.result.slowerThanInterval ?? 0), 0)
  const slowDirect = o.burstRuns.filter((r) => r.path === 'direct').reduce((s, r) => s + (r.result.slowerThanInterval ?? 0), 0)
  console.log(`\nh2load responses slower than 16 ms (a later request on that connection went late, untimed): direct ${slowDirect}, mesh ${slow} of ${rounds * RATE * seconds}`)
  const re = ratios(lat.even)
  const rb = ratios(lat.bursts)
  console.log(`mesh/direct latency: evenly spaced p50 ${re.p50!.toFixed(1)}x, p90 ${re.p90!.toFixed(1)}x, p99 ${re.p99!.toFixed(1)}x; bursts p50 ${rb.p50!.toFixed(1)}x, p90 ${rb.p90!.toFixed(1)}x, p99 ${rb.p99!.toFixed(1)}x\n`)
  console.log(`| daemon | CPU s per 1,000 requests: 64 connections | 1,000 req/s evenly | 1,000 req/s in bursts | RSS MiB at start | RSS MiB after the runs (heap used) | RSS MiB ${IDLE_MS / 1000} s later |`)
  console.log('|---|---|---|---|---|---|---|')
  for (const c of cpu) console.log(`| ${c.who} (${c.who === 'source' ? 'node-a' : 'node-b'}) | ${c.at64Connections.toFixed(3)} (${(c.kernelShareAt64 * 100).toFixed(0)}% in the kernel) | ${c.at1000Even.toFixed(3)} | ${c.at1000Bursts.toFixed(3)} | ${c.rssStartMiB} | ${c.rssAfterMiB} (${c.heapUsedAfterMiB}) | ${c.rssIdleMiB} |`)
  const others = (x: Metrics): string => Object.entries(x.other).map(([k, n]) => `${n} × ${k}`).join(', ') || 'none'
  console.log(`\nrequests counted by the daemons (istio_requests_total): source ${o.metrics.source.requests}, not 200: ${others(o.metrics.source)}; destination ${o.metrics.destination.requests}, not 200: ${others(o.metrics.destination)}`)
  return { throughput: tp, latency: lat, ratio: { reqPerSec: m.median / d.median, even: re, bursts: rb }, cpu }
}

function reportProfile(p: NonNullable<MeshOutcome['profiled']>, seconds: number): void {
  console.log(`\nprofiled run: mesh, wrk ${seconds} s at ${CONNS} connections, ${rate(p.load).toFixed(0)} req/s`)
  for (const who of DAEMONS) {
    const x = p.profiles[who]
    console.log(`\n${who} daemon: busy ${x.busyMs} ms of ${x.wallMs} ms, start and stop included (sample interval ${x.intervalUs} µs); ${x.file}\n`)
    console.log('| function (self time) | ms | of busy |\n|---|---|---|')
    for (const r of x.functions) console.log(`| ${r.name} | ${r.ms} | ${(r.share * 100).toFixed(1)}% |`)
    console.log('\n| owner (self time) | ms | of busy |\n|---|---|---|')
    for (const r of x.owners.slice(0, 12)) console.log(`| ${r.name} | ${r.ms} | ${(r.share * 100).toFixed(1)}% |`)
  }
}

async function report(o: Outcome): Promise<void> {
  const cpuModel = cpus()[0]?.model ?? 'cpu'
  const machine = `${cpuModel}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`
  const server = o.nginxV ? o.nginxV.replace(/^nginx version: /, '') : 'scripts/bench/http-mesh-server.ts (node:http)'
  console.log(`machine: ${machine}; load average ${o.load.before} before, ${o.load.after} after`)
  console.log(`server: ${server}, 1 KiB responses; ${o.wrkV.split(' ').slice(0, 2).join(' ')}${o.h2loadV ? `; ${o.h2loadV}` : ''}; daemons at logLevel ${LOG_LEVEL}\n`)
  const mesh = o.mesh ? reportMesh(o.mesh, o.opts) : undefined
  const stages = o.stages ? reportStages(o.stages, CONNS) : undefined
  const stageProfiles = o.stageProfiles ? reportStageProfiles(o.stageProfiles) : undefined
  if (o.mesh?.profiled) reportProfile(o.mesh.profiled, o.opts.profileSeconds)

  const at = new Date().toISOString()
  const raw = {
    bench: 'http-mesh', at, machine: { cpu: cpuModel, cores: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version }, loadavg: o.load,
    tools: { wrk: o.wrkV, h2load: o.h2loadV, server },
    params: {
      ...(o.opts.only ? { only: o.opts.only } : {}), connections: CONNS, seconds: o.opts.seconds, rounds: o.opts.rounds, rate: RATE, rateConnections: RATE_CONNS,
      responseBytes: BODY.length, profileSeconds: o.opts.profileSeconds, stageRounds: o.opts.stageRounds, stagePost: o.opts.post, ...(o.opts.profileStages ? { profileStages: o.opts.profileStages } : {}), daemonLogLevel: LOG_LEVEL,
    },
    ...(o.mesh ? { loads: o.mesh.loads, evenRuns: o.mesh.evenRuns, burstRuns: o.mesh.burstRuns, summary: mesh, metrics: o.mesh.metrics } : {}),
    ...(o.mesh?.profiled ? { profiledLoad: o.mesh.profiled.load, profiles: o.mesh.profiled.profiles } : {}),
    ...(o.stages && stages ? { stages: { runs: o.stages.runs, summary: stages, ...(stageProfiles ? { profiles: stageProfiles } : {}) } } : {}),
  }
  const file = await writeResults(`http-mesh${o.opts.only === 'stages' ? '-stages' : ''}`, raw, at)
  console.log(`\nraw: ${file}`)
}

if (import.meta.main) {
  await benchHttpMesh(process.argv.slice(2))
  console.log(`\nmachine: ${machineLine()}`)
}
