// hostmesh against what a user would deploy instead for node-to-node mTLS: an HAProxy pair
// (scripts/bench/peer-haproxy.ts), and against direct, on the same two namespace hosts, the
// same servers and the same clients, in one run (issue #14). node-a is the client host, node-b
// the server host; both run the real `hostmesh run` (own node CA under one root, real iptables
// capture) and an HAProxy. Paths, each to the same server process:
//   direct       root on node-a (never captured) to a server port no rule redirects
//   pair         root on node-a to 127.0.0.1:<port> on node-a: HAProxy → TLS 1.3 mTLS → HAProxy
//                on node-b → 127.0.0.1:<the direct port>
//   hostmesh     the client workload (uid 3001) to a Service VIP: capture → HBONE → node-b's
//                daemon → the server workload's captured port; an L4 (tcp) Service
//   hostmesh-l7  the same through an http Service with an HTTPRoute: the L7 path on both hosts
// Scenarios (interleaved per round, the path order rotating, so drift hits all alike):
//   bulk       iperf3 -c, one connection, `seconds` s (iperf3 -s on node-b)
//   conns      new connections/s: wrk, 16 connections, `Connection: close`, nginx's 1 KiB
//   keepalive  req/s: wrk, 64 keep-alive connections, 1 KiB
//   http       req/s at 64 connections with hostmesh on its L7 path (the pair stays in tcp mode)
//   latency    a fixed 1,000 req/s over 16 keep-alive connections (scripts/bench/rate-client.ts,
//              open loop, timed from each request's due time): p50/p90/p99 against direct;
//              hostmesh on L4 (issue #14's target) and on L7
// For each proxy (both HAProxy processes; both daemons): CPU from /proc/<pid>/stat around
// each run, per GB (bulk) or per 1,000 connections/requests, and RSS (peak during each run,
// and after the runs). Then, unless --profile none, the scenarios where hostmesh misses its
// target once more with both daemons under --cpu-prof, summarised by cpuprofile-summary.ts.
// Installs haproxy, iperf3, wrk and nginx with apt-get when missing. Needs root.
// Options (`npm run bench -- peer --seconds 3 --only bulk,conns`):
//   --seconds N           each measured run (default 5)
//   --rounds N            rounds (default 3)
//   --only S[,S…]         only these scenarios (bulk, conns, keepalive, http, latency)
//   --profile auto|none|S[,S…]  which scenarios to profile (default auto: those missing a target)
//   --profile-seconds N   each profiled run (default 10)
//   --workers auto|N      both daemons' `workers` (default auto: one thread per CPU)
//   --source              run the daemons from the TypeScript sources with Node's defaults,
//                         instead of as installed (dist/ built here, with hostmesh.service's
//                         Environment=: NODE_OPTIONS, MALLOC_ARENA_MAX; scripts/bench/installed.ts)
//   --perf                before the --cpu-prof runs, each profiled scenario once more on hostmesh
//                         and on the pair under `perf record` (scripts/bench/peer-perf.ts): CPU by
//                         native component (kernel, OpenSSL, nghttp2, V8, JIT code, libc, …)
import { mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { parseMetrics, total } from '../demo/telemetry.ts'
import { untilReady } from '../netns/mesh-nodes.ts'
import { withTestNet, type HostProcess, type TestHost } from '../netns/hosts.ts'
import { buildDist, unitEnvironment, withoutUnitEnvironment } from './installed.ts'
import { machineLine, writeResults } from './results.ts'
import { summariseFile } from './cpuprofile-summary.ts'
import { ensureDebianTools } from './debian-tools.ts'
import { checkPairTls, haproxyInfo, startHaproxy, writePair, type PairPort, type PairTls } from './peer-haproxy.ts'
import { report, SCENARIOS, targetsMissed, type Outcome, type PathName, type FreshDaemons, type PeerOptions, type PerfRun, type Proc, type ProfiledScenario, type RunRecord, type Scenario } from './peer-report.ts'
import { perfRecord, perfSummarise, perfWorks } from './peer-perf.ts'
import { sourceState } from './source-state.ts'
import { cmdline, cpuSeconds, loadavg, rssMiB, threads } from './proc-stat.ts'
import { BODY, CLIENT_UID, HTTP_PLAIN, IPERF_MESH, IPERF_PLAIN, L4_VIP, L7_VIP, LOG_LEVEL, peerFiles, peerNodeConfigs, SERVER_UID } from './peer-hosts.ts'

const here = (f: string): string => new URL(f, import.meta.url).pathname
const SOURCE_CLI = here('../../daemon/cli.ts')
const NODE = process.execPath
const TRUST = 'cluster.local'

const PAIR_PORTS: readonly PairPort[] = [
  { name: 'iperf', clientPort: 15201, tlsPort: 25201, serverPort: IPERF_PLAIN },
  { name: 'http', clientPort: 18080, tlsPort: 28080, serverPort: HTTP_PLAIN },
]
const TOOLS = { haproxy: 'haproxy', iperf3: 'iperf3', wrk: 'wrk', nginx: 'nginx', openssl: 'openssl', curl: 'curl' } as const

const ALL: readonly Scenario[] = ['bulk', 'conns', 'keepalive', 'http', 'latency']

function parseScenarios(flag: string, v: string): Scenario[] {
  const list = v.split(',').map((s) => s.trim()).filter((s) => s !== '')
  for (const s of list) if (!(ALL as readonly string[]).includes(s)) throw new Error(`${flag} takes scenarios from ${ALL.join(', ')}, not "${s}"`)
  return ALL.filter((s) => list.includes(s))
}

export function peerOptions(args: readonly string[]): PeerOptions {
  const { values } = parseArgs({
    args: [...args], strict: true, allowPositionals: false,
    options: { seconds: { type: 'string' }, rounds: { type: 'string' }, only: { type: 'string' }, profile: { type: 'string' }, 'profile-seconds': { type: 'string' }, perf: { type: 'boolean' }, workers: { type: 'string' }, source: { type: 'boolean' } },
  })
  const num = (name: string, v: string | undefined, dflt: number, min: number): number => {
    if (v === undefined) return dflt
    const n = Number(v)
    if (!Number.isInteger(n) || n < min) throw new Error(`--${name} takes a whole number ≥ ${min}, not "${v}"`)
    return n
  }
  const scenarios = values.only === undefined ? [...ALL] : parseScenarios('--only', values.only)
  if (scenarios.length === 0) throw new Error('--only names no scenario')
  const p = values.profile ?? 'auto'
  return {
    seconds: num('seconds', values.seconds, 5, 1),
    rounds: num('rounds', values.rounds, 3, 1),
    scenarios,
    profile: p === 'auto' || p === 'none' ? p : parseScenarios('--profile', p),
    profileSeconds: num('profile-seconds', values['profile-seconds'], 10, 1),
    perf: values.perf === true,
    workers: workersOption(values.workers),
    daemon: values.source === true ? 'source' : 'installed',
  }
}

/** --workers auto|N: the daemons' `workers` setting (default: the node config's default, auto). */
function workersOption(v: string | undefined): 'auto' | number {
  if (v === undefined || v === 'auto') return 'auto'
  const n = Number(v)
  if (!Number.isInteger(n) || n < 1 || n > 256) throw new Error(`--workers: expected auto or 1–256, got ${v}`)
  return n
}

async function firstLine(host: TestHost, cmd: string[], match?: RegExp): Promise<string> {
  const r = await host.exec(cmd)
  const lines = `${r.stdout}\n${r.stderr}`.split('\n').map((l) => l.trim()).filter((l) => l !== '')
  return (match ? lines.find((l) => match.test(l)) : lines[0]) ?? '?'
}

interface Who { uid: number; gid: number }
const ROOT: Who = { uid: 0, gid: 0 }
const CLIENT: Who = { uid: CLIENT_UID, gid: CLIENT_UID }

export async function benchPeer(args: readonly string[] = []): Promise<void> {
  const opts = peerOptions(args)
  const installed = await ensureDebianTools(opts.perf ? { ...TOOLS, perf: 'linux-perf' } : TOOLS)
  if (opts.perf && !(await perfWorks())) throw new Error('--perf: `perf stat true` fails here (no access to the CPU clock events?)')
  const { dir, io, nginxDir } = peerFiles('peer')
  try {
    const loadBefore = await loadavg()

    // As installed (the unit's environment, dist/), unless --source.
    const daemonRun = opts.daemon === 'installed'
      ? { cli: await buildDist(join(dir, 'pkg')), env: unitEnvironment() }
      : { cli: SOURCE_CLI, env: {} }
    const CLI = daemonRun.cli
    const daemonEnv = { ...withoutUnitEnvironment(), ...daemonRun.env }
    await withTestNet({ hosts: ['node-a', 'node-b'] }, async (net) => {
      const [a, b] = [net.host('node-a'), net.host('node-b')]
      const configs = await peerNodeConfigs(net, dir, `workers: ${opts.workers}\n`)
      const pairFiles = await writePair(dir, TRUST, a, b, join(dir, 'root', 'bundle.pem'), PAIR_PORTS)
      const startDaemon = async (h: TestHost, flags: string[] = []): Promise<HostProcess> => {
        const d = h.spawn([NODE, ...flags, CLI, 'run', '--config', configs.get(h.name)!], { env: daemonEnv })
        await untilReady(h, d)
        return d
      }
      let daemons = { client: await startDaemon(a), server: await startDaemon(b) }
      const nginx = b.spawn(['nginx', '-p', nginxDir, '-c', join(nginxDir, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'], { uid: SERVER_UID, gid: SERVER_UID })
      const iperfServers = [IPERF_MESH, IPERF_PLAIN].map((port) => b.spawn(['iperf3', '-s', '--forceflush', '-p', String(port)], { uid: SERVER_UID, gid: SERVER_UID }))
      for (const s of iperfServers) await s.waitFor(/Server listening/)
      const haproxy = { client: startHaproxy(a, pairFiles.clientCfg), server: startHaproxy(b, pairFiles.serverCfg) }

      const url = (path: PathName): string => ({
        direct: `http://${b.ipv4}:${HTTP_PLAIN}/1k`,
        pair: `http://127.0.0.1:${PAIR_PORTS[1]!.clientPort}/1k`,
        hostmesh: `http://${L4_VIP}/1k`,
        'hostmesh-l7': `http://${L7_VIP}/1k`,
      })[path]
      const iperfTarget = (path: PathName): [string, number] => {
        if (path === 'direct') return [b.ipv4, IPERF_PLAIN]
        if (path === 'pair') return ['127.0.0.1', PAIR_PORTS[0]!.clientPort]
        if (path === 'hostmesh') return [L4_VIP, IPERF_MESH]
        throw new Error(`no bulk path "${path}"`)
      }
      const as = (path: PathName): Who => (path === 'hostmesh' || path === 'hostmesh-l7' ? CLIENT : ROOT)

      // Every path answers, through what it should: the VIPs route nowhere but through capture.
      const expectBody = async (path: PathName): Promise<void> => {
        let last = ''
        for (let i = 0; i < 50; i++) {
          const r = await a.exec(['curl', '-sS', '-m', '2', '-i', url(path)], { ...as(path), timeoutMs: 5000 })
          last = `${r.stdout}${r.stderr}`
          if (r.stdout.startsWith('HTTP/1.1 200') && r.stdout.endsWith(BODY.toString())) return
          await sleep(100)
        }
        throw new Error(`${path}: ${url(path)} did not answer 200 with 1 KiB:\n${last.slice(0, 1500)}\n--- nginx\n${nginx.output.slice(-1500)}\n--- haproxy (client)\n${haproxy.client.output.slice(-1500)}\n--- haproxy (server)\n${haproxy.server.output.slice(-1500)}\n--- hostmesh node-a\n${daemons.client.output.slice(-1500)}\n--- hostmesh node-b\n${daemons.server.output.slice(-1500)}`)
      }
      for (const path of ['direct', 'pair', 'hostmesh', 'hostmesh-l7'] as const) await expectBody(path)
      const tls: PairTls = await checkPairTls(a, b, pairFiles, PAIR_PORTS[1]!, '/1k')
      if (tls.protocol !== 'TLSv1.3' || !tls.serverVerified || !tls.acceptedWithClientCert || !tls.refusedWithoutClientCert) throw new Error(`the HAProxy pair's TLS is not what the bench compares against: ${JSON.stringify({ ...tls, sClient: undefined })}\n${tls.sClient}`)

      const pids = async (): Promise<Record<Proc, number>> => {
        const p: Record<Proc, number> = { 'haproxy-client': haproxy.client.pid, 'haproxy-server': haproxy.server.pid, 'hostmesh-client': daemons.client.pid, 'hostmesh-server': daemons.server.pid }
        for (const [name, pid] of Object.entries(p)) {
          const argv = await cmdline(pid)
          const want = name.startsWith('haproxy') ? 'haproxy' : CLI
          if (argv[0] === 'ip' || !argv.some((x) => x === want || x.endsWith(`/${want}`))) throw new Error(`pid ${pid} runs "${argv.join(' ')}", not ${name}`)
        }
        return p
      }
      let procs = await pids()
      const versions = {
        haproxy: await firstLine(a, ['haproxy', '-v']),
        haproxyOpenssl: await firstLine(a, ['haproxy', '-vv'], /Running on OpenSSL/),
        haproxyThreads: { client: await threads(procs['haproxy-client']), server: await threads(procs['haproxy-server']) },
        iperf3: await firstLine(a, ['iperf3', '--version']),
        wrk: (await firstLine(a, ['wrk', '-v'])).split(' ').slice(0, 2).join(' '),
        nginx: (await firstLine(b, ['nginx', '-v'])).replace(/^nginx version: /, ''),
        node: process.version, nodeOpenssl: process.versions.openssl,
      }
      const rssAtStart = await rssOf(procs)

      // The clients, all on node-a.
      const bulk = async (path: PathName, seconds: number): Promise<Outcome> => {
        const [host, port] = iperfTarget(path)
        const r = await a.exec(['iperf3', '-c', host, '-p', String(port), '-t', String(seconds), '-J'], { ...as(path), timeoutMs: (seconds + 30) * 1000 })
        const j = JSON.parse(r.stdout || '{}') as { error?: string; end?: { sum_received?: { bytes: number; seconds: number }; sum_sent?: { retransmits?: number } } }
        const rx = j.end?.sum_received
        if (j.error || !rx) return { bytes: 0, seconds: 0, gbps: NaN, retransmits: NaN, error: j.error ?? (r.stderr.trim() || `iperf3 exit ${r.code}`) }
        return { bytes: rx.bytes, seconds: rx.seconds, gbps: (rx.bytes * 8) / rx.seconds / 1e9, retransmits: j.end?.sum_sent?.retransmits ?? NaN }
      }
      const wrk = async (path: PathName, conns: number, seconds: number, close: boolean): Promise<Outcome> => {
        const out = await a.mustExec(['wrk', '-t2', `-c${conns}`, `-d${seconds}s`, '--timeout', '5s', ...(close ? ['-H', 'Connection: close'] : []), '-s', here('./wrk-report.lua'), url(path)], { ...as(path), timeoutMs: (seconds + 30) * 1000 })
        const w = JSON.parse(out.trim().split('\n').at(-1)!) as { requests: number; seconds: number; errors: number; non2xx: number; p50ms: number; p99ms: number }
        return { ...w, rate: w.requests / w.seconds }
      }
      const fixedRate = async (path: PathName, seconds: number): Promise<Outcome> =>
        JSON.parse(await a.mustExec([NODE, here('./rate-client.ts'), url(path), '1000', String(seconds), '16'], { ...as(path), timeoutMs: (seconds + 30) * 1000 })) as Outcome
      const load = (scenario: Scenario, path: PathName, seconds: number): Promise<Outcome> => {
        switch (scenario) {
          case 'bulk': return bulk(path, seconds)
          case 'conns': return wrk(path, 16, seconds, true)
          case 'keepalive': return wrk(path, 64, seconds, false)
          case 'http': return wrk(path, 64, seconds, false)
          case 'latency': return fixedRate(path, seconds)
        }
      }

      // The daemons' last-resort GCs (run/memory.ts): each a pause of tens of ms on whatever
      // traffic is in flight; and V8's own collections (prom-client's nodejs_gc_duration_seconds,
      // summed over the worker threads), which say what the CPU per unit went to. Read before and
      // after each run, outside its CPU window.
      const gcCounts = async (): Promise<{ reliefs: number; major: [number, number]; minor: [number, number]; pauseMs: [number, number] }> => {
        const out = { reliefs: 0, major: [0, 0] as [number, number], minor: [0, 0] as [number, number], pauseMs: [0, 0] as [number, number] }
        for (const [i, h] of [a, b].entries()) {
          const samples = parseMetrics(await h.mustExec(['curl', '-sS', '-m', '2', 'http://127.0.0.1:15000/metrics']))
          out.reliefs += total(samples, 'hostmesh_memory_reliefs_total')
          out.major[i] = total(samples, 'nodejs_gc_duration_seconds_count', { kind: 'major' })
          out.minor[i] = total(samples, 'nodejs_gc_duration_seconds_count', { kind: 'minor' })
          out.pauseMs[i] = total(samples, 'nodejs_gc_duration_seconds_sum') * 1000
        }
        return out
      }
      // CPU of all four proxy processes around each run, and each one's RSS every 250 ms during it.
      const measured = async (round: number, scenario: Scenario, path: PathName, seconds: number): Promise<RunRecord> => {
        const g0 = await gcCounts()
        const c0 = await cpuOf(procs)
        const peak = await rssOf(procs)
        let sampling = true
        const sampler = (async () => {
          while (sampling) {
            await sleep(250)
            const now = await rssOf(procs).catch(() => undefined)
            if (now) for (const k of Object.keys(peak) as Proc[]) peak[k] = Math.max(peak[k], now[k])
          }
        })()
        const t0 = performance.now()
        const out = await load(scenario, path, seconds).finally(() => { sampling = false })
        const wall = (performance.now() - t0) / 1000
        await sampler
        const c1 = await cpuOf(procs)
        const g1 = await gcCounts()
        const daemonGcPauses = g1.reliefs - g0.reliefs
        const daemonGcs = { major: [g1.major[0] - g0.major[0], g1.major[1] - g0.major[1]] as [number, number], minor: [g1.minor[0] - g0.minor[0], g1.minor[1] - g0.minor[1]] as [number, number], pauseMs: [g1.pauseMs[0] - g0.pauseMs[0], g1.pauseMs[1] - g0.pauseMs[1]] as [number, number] }
        const diff = (f: (x: { all: number; system: number }) => number): Record<Proc, number> =>
          Object.fromEntries((Object.keys(c0) as Proc[]).map((k) => [k, round3(f(c1[k]) - f(c0[k]))])) as Record<Proc, number>
        return { round, scenario, path, out, wallSeconds: round3(wall), cpu: diff((x) => x.all), systemCpu: diff((x) => x.system), rssPeakMiB: roundAll(peak), daemonGcPauses, daemonGcs }
      }

      const paths = (s: Scenario): readonly PathName[] => SCENARIOS[s].paths
      console.log(`peer: ${opts.scenarios.join(', ')}; ${opts.rounds} rounds of ${opts.seconds} s; hostmesh workers: ${opts.workers}; HAProxy nbthread default (${versions.haproxyThreads.client}/${versions.haproxyThreads.server} threads); TLS ${tls.protocol} ${tls.cipher}`)
      // Warm-up: the HBONE session, HAProxy's TLS session cache, the pools, the JIT.
      for (const s of opts.scenarios) for (const p of paths(s)) await load(s, p, 2)
      const runs: RunRecord[] = []
      const roundLoads: string[] = []
      for (let round = 0; round < opts.rounds; round++) {
        roundLoads.push(await loadavg())
        for (const s of opts.scenarios) {
          const ps = paths(s)
          const order = ps.map((_, i) => ps[(i + round) % ps.length]!)
          for (const p of order) {
            const r = await measured(round, s, p, opts.seconds)
            runs.push(r)
            process.stderr.write(`round ${round + 1}/${opts.rounds} ${s} ${p}: ${brief(s, r.out)}\n`)
          }
        }
      }
      const rssAfter = await rssOf(procs)
      const metric = async (h: TestHost): Promise<Record<string, number>> => {
        const samples = parseMetrics(await h.mustExec(['curl', '-sS', '-m', '2', 'http://127.0.0.1:15000/metrics']))
        return {
          l7Requests: total(samples, 'istio_requests_total'), l7Not200: total(samples, 'istio_requests_total') - total(samples, 'istio_requests_total', { response_code: '200' }),
          tcpOpened: total(samples, 'istio_tcp_connections_opened_total'), gcPauses: total(samples, 'hostmesh_memory_reliefs_total'), heapUsedMiB: Math.round(total(samples, 'nodejs_heap_size_used_bytes') / 2 ** 20),
        }
      }
      const daemonMetrics = { client: await metric(a), server: await metric(b) }
      // Whether the pair resumed TLS sessions (MaxSslRate handshakes/s against SslFrontendMaxKeyRate full ones).
      const pick = (i: Record<string, number>): Record<string, number> => Object.fromEntries(['CumSslConns', 'MaxSslRate', 'SslFrontendMaxKeyRate', 'SslBackendMaxKeyRate', 'Nbthread'].map((k) => [k, i[k] ?? NaN]))
      const haproxyStats = { client: pick(await haproxyInfo(pairFiles.clientSocket)), server: pick(await haproxyInfo(pairFiles.serverSocket)) }
      const loadAfterRuns = await loadavg()

      // RSS at 1,000 req/s of daemons that have carried nothing heavier: both restarted, idle
      // for 2 s, then the latency load on L4 and then on L7 (the rounds above leave the heap
      // and V8's page pool as the bulk and keep-alive loads grew them).
      let fresh: FreshDaemons | undefined
      if (opts.scenarios.includes('latency')) {
        await daemons.client.stop('SIGTERM', 20_000)
        await daemons.server.stop('SIGTERM', 20_000)
        daemons = { client: await startDaemon(a), server: await startDaemon(b) }
        procs = await pids()
        await sleep(2000)
        const idle = await rssOf(procs)
        fresh = { idleRssMiB: roundAll(idle), l4: await measured(-2, 'latency', 'hostmesh', opts.seconds), l7: await measured(-2, 'latency', 'hostmesh-l7', opts.seconds) }
      }

      // Once more under the profiler, for the scenarios where hostmesh misses its target. Both
      // daemons restart with --cpu-prof (node writes the profile on a clean exit); only the
      // samples taken while the measured load ran are summarised.
      const toProfile = opts.profile === 'none' ? [] : opts.profile === 'auto' ? targetsMissed(runs, opts) : opts.profile
      const profiles: ProfiledScenario[] = []
      const profRoot = toProfile.length > 0 ? mkdtempSync(join(tmpdir(), 'hostmesh-bench-peer-prof-')) : undefined
      // First perf, on the daemons as they are now (not under --cpu-prof), and on the pair.
      const perfRuns: PerfRun[] = []
      for (const s of opts.perf ? toProfile : []) {
        for (const path of [s === 'http' ? 'hostmesh-l7' : 'hostmesh', 'pair'] as const) {
          const who: readonly [Proc, Proc] = path === 'pair' ? ['haproxy-client', 'haproxy-server'] : ['hostmesh-client', 'hostmesh-server']
          await load(s, path, 1)
          const files = who.map((w) => join(profRoot!, `${s}-${w}.perf`))
          const recording = Promise.all(who.map((w, i) => perfRecord(procs[w], opts.profileSeconds, files[i]!)))
          const r = await measured(-1, s, path, opts.profileSeconds)
          await recording
          perfRuns.push({ scenario: s, path, run: r, processes: { [who[0]]: await perfSummarise(files[0]!), [who[1]]: await perfSummarise(files[1]!) } })
          process.stderr.write(`perf ${s} (${path}): ${brief(s, r.out)}\n`)
        }
      }
      for (const s of toProfile) {
        const path: PathName = s === 'http' ? 'hostmesh-l7' : 'hostmesh'
        const profDir = join(profRoot!, s)
        await daemons.client.stop('SIGTERM', 20_000)
        await daemons.server.stop('SIGTERM', 20_000)
        daemons = {
          client: await startDaemon(a, ['--cpu-prof', `--cpu-prof-dir=${join(profDir, 'client')}`]),
          server: await startDaemon(b, ['--cpu-prof', `--cpu-prof-dir=${join(profDir, 'server')}`]),
        }
        procs = await pids()
        await load(s, path, 2)
        const startUs = Number(process.hrtime.bigint() / 1000n)
        const r = await measured(-1, s, path, opts.profileSeconds)
        const window = { startUs, endUs: Number(process.hrtime.bigint() / 1000n) }
        const exits = { client: await daemons.client.stop('SIGTERM', 20_000), server: await daemons.server.stop('SIGTERM', 20_000) }
        const summary = async (who: 'client' | 'server'): Promise<ProfiledScenario['daemons']['client']> => {
          const d = join(profDir, who)
          // One profile per thread (workers): all of them, summed.
          const files = readdirSync(d).filter((n) => n.endsWith('.cpuprofile')).map((f) => join(d, f))
          if (files.length === 0) throw new Error(`no .cpuprofile from the ${who} daemon (exit ${JSON.stringify(exits[who])})`)
          return { file: files.join(' '), ...(await summariseFile(files, 400, window)) }
        }
        profiles.push({ scenario: s, path, run: r, daemons: { client: await summary('client'), server: await summary('server') } })
        process.stderr.write(`profiled ${s} (${path}): ${brief(s, r.out)}\n`)
      }
      await nginx.stop()
      for (const s of iperfServers) await s.stop()
      await haproxy.client.stop()
      await haproxy.server.stop()

      const machine = { cpu: cpus()[0]?.model ?? 'cpu', cores: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version }
      const summary = report({ opts, runs, versions, tls, rssAtStart, rssAfter, ...(fresh ? { fresh } : {}), daemonMetrics, haproxyStats, profiles, perfRuns, machine, installed, load: { before: loadBefore, rounds: roundLoads, afterRuns: loadAfterRuns, after: await loadavg() } })
      const at = new Date().toISOString()
      const raw = {
        bench: 'peer', at, source: await sourceState(), machine, loadavg: { before: loadBefore, rounds: roundLoads, afterRuns: loadAfterRuns }, versions, tls, installed,
        params: { ...opts, daemonCli: opts.daemon === 'installed' ? 'dist/daemon/cli.js (built for this run)' : 'daemon/cli.ts', daemonEnv: daemonRun.env, responseBytes: BODY.length, rate: 1000, rateConnections: 16, keepAliveConnections: 64, newConnectionsConcurrency: 16, daemonLogLevel: LOG_LEVEL, haproxyNbthread: 'default (one per CPU)' },
        summary, runs, rssAtStart, rssAfter, daemonMetrics, haproxyStats, ...(fresh ? { fresh } : {}),
        profiles: profiles.map((p) => ({ ...p, daemons: { client: trimProfile(p.daemons.client), server: trimProfile(p.daemons.server) } })),
        perf: perfRuns,
      }
      const file = await writeResults('peer', raw, at)
      console.log(`\nraw: ${file}${profRoot ? `\nprofiles: ${profRoot}` : ''}`)
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
    rmSync(io, { recursive: true, force: true })
  }
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000

function roundAll(r: Record<Proc, number>): Record<Proc, number> {
  return Object.fromEntries(Object.entries(r).map(([k, v]) => [k, Math.round(v * 10) / 10])) as Record<Proc, number>
}

async function cpuOf(procs: Record<Proc, number>): Promise<Record<Proc, { all: number; system: number }>> {
  const e = await Promise.all(Object.entries(procs).map(async ([k, pid]) => [k, await cpuSeconds(pid)] as const))
  return Object.fromEntries(e) as Record<Proc, { all: number; system: number }>
}

async function rssOf(procs: Record<Proc, number>): Promise<Record<Proc, number>> {
  const e = await Promise.all(Object.entries(procs).map(async ([k, pid]) => [k, await rssMiB(pid)] as const))
  return Object.fromEntries(e) as Record<Proc, number>
}

function brief(s: Scenario, o: Outcome): string {
  if (o.error) return `error: ${o.error}`
  if (s === 'bulk') return `${Number(o.gbps).toFixed(2)} Gbit/s`
  if (s === 'latency') return `p50 ${o.p50ms} ms, p99 ${o.p99ms} ms, ${Number(o.rate).toFixed(0)} req/s, failed ${o.failed}`
  return `${Number(o.rate).toFixed(0)}/s, errors ${o.errors}, non-2xx ${o.non2xx}`
}

/** The raw JSON keeps each profile's top functions, not all 400 the summary looked at. */
function trimProfile(p: ProfiledScenario['daemons']['client']): Record<string, unknown> {
  return { ...p, functions: p.functions.slice(0, 40), files: p.files.slice(0, 20), owners: p.owners.slice(0, 25) }
}

if (import.meta.main) {
  await benchPeer(process.argv.slice(2))
  console.log(`\nmachine: ${machineLine()}`)
}
