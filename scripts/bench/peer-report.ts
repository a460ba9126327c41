// The peer bench's scenarios, its summary (medians of the rounds with min and max, ratios of
// hostmesh against the HAProxy pair within each round, the cost per unit of work, RSS, the
// issue #14 targets) and the tables it prints. scripts/bench/peer.ts runs the loads.
import type { ProfileSummary } from './cpuprofile-summary.ts'
import type { PerfSummary } from './peer-perf.ts'
import { median } from './stats.ts'

export type Scenario = 'bulk' | 'conns' | 'keepalive' | 'http' | 'latency'
export type PathName = 'direct' | 'pair' | 'hostmesh' | 'hostmesh-l7'
export type Proc = 'haproxy-client' | 'haproxy-server' | 'hostmesh-client' | 'hostmesh-server'
/** What a client printed: iperf3's bytes and Gbit/s, wrk's or rate-client.ts's counts and percentiles. */
export interface Outcome { [k: string]: number | string | undefined; error?: string }

export interface PeerOptions {
  seconds: number
  rounds: number
  scenarios: Scenario[]
  profile: 'auto' | 'none' | Scenario[]
  profileSeconds: number
  perf: boolean
  workers: 'auto' | number
  /** installed: dist/ with hostmesh.service's Environment=; source: daemon/cli.ts with Node's defaults. */
  daemon: 'installed' | 'source'
}

export interface RunRecord {
  /** -1: a profiled run, not part of the summary. */
  round: number
  scenario: Scenario
  path: PathName
  out: Outcome
  wallSeconds: number
  /** Each proxy process's CPU seconds during the run (utime + stime), and the kernel's part. */
  cpu: Record<Proc, number>
  systemCpu: Record<Proc, number>
  rssPeakMiB: Record<Proc, number>
  /** Last-resort GCs the two daemons ran during the run (hostmesh_memory_reliefs_total). */
  daemonGcPauses: number
  /** V8's collections in the two daemons during the run (client host, server host); absent in older results. */
  daemonGcs?: { major: [number, number]; minor: [number, number]; pauseMs?: [number, number] }
}

/** Both daemons restarted after the rounds: idle RSS, then a fixed 1,000 req/s on L4 and on L7 (round -2). */
export interface FreshDaemons { idleRssMiB: Record<Proc, number>; l4: RunRecord; l7: RunRecord }

export interface PerfRun {
  scenario: Scenario
  path: PathName
  run: RunRecord
  processes: Partial<Record<Proc, PerfSummary>>
}

export interface ProfiledScenario {
  scenario: Scenario
  path: PathName
  run: RunRecord
  daemons: Record<'client' | 'server', ProfileSummary & { file: string }>
}

interface Spec {
  title: string
  paths: readonly PathName[]
  /** The path whose ratio against the pair is the scenario's. */
  mesh: 'hostmesh' | 'hostmesh-l7'
  /** Throughput per run, in the unit of the title; undefined for latency. */
  value?: (o: Outcome) => number
  /** The work one run did, in the CPU table's unit. */
  work: (o: Outcome) => number
  per: string
  /** hostmesh / pair the issue asks for. */
  target?: number
}

const requests = (o: Outcome): number => Number(o.requests) / 1000

export const SCENARIOS: Record<Scenario, Spec> = {
  bulk: { title: 'L4 bulk, 1 connection (iperf3 -c, Gbit/s)', paths: ['direct', 'pair', 'hostmesh'], mesh: 'hostmesh', value: (o) => Number(o.gbps), work: (o) => Number(o.bytes) / 1e9, per: 'GB', target: 1.0 },
  conns: { title: 'L4 new connections/s (wrk, 16 concurrent, `Connection: close`, 1 KiB)', paths: ['direct', 'pair', 'hostmesh'], mesh: 'hostmesh', value: (o) => Number(o.rate), work: requests, per: '1,000 connections', target: 1.5 },
  keepalive: { title: 'L4 keep-alive req/s (wrk, 64 connections, 1 KiB)', paths: ['direct', 'pair', 'hostmesh'], mesh: 'hostmesh', value: (o) => Number(o.rate), work: requests, per: '1,000 requests', target: 1.0 },
  http: { title: 'HTTP req/s, 64 connections (hostmesh on its L7 path; the pair in tcp mode)', paths: ['direct', 'pair', 'hostmesh-l7'], mesh: 'hostmesh-l7', value: (o) => Number(o.rate), work: requests, per: '1,000 requests' },
  latency: { title: 'a fixed 1,000 req/s, 16 keep-alive connections', paths: ['direct', 'pair', 'hostmesh', 'hostmesh-l7'], mesh: 'hostmesh', work: requests, per: '1,000 requests' },
}

const PROCS: Record<'pair' | 'hostmesh', readonly [Proc, Proc]> = { pair: ['haproxy-client', 'haproxy-server'], hostmesh: ['hostmesh-client', 'hostmesh-server'] }
const proxyOf = (p: PathName): 'pair' | 'hostmesh' | undefined => (p === 'pair' ? 'pair' : p === 'direct' ? undefined : 'hostmesh')

/** Latency added at 1,000 req/s, p99 (ms), and RSS of one daemon at 1,000 req/s (MiB). */
export const P99_ADDED_MS = 0.5
export const RSS_AT_1000_MIB = 80

interface Stat { median: number; min: number; max: number; values: number[] }

function stat(xs: readonly number[]): Stat {
  const v = xs.filter((x) => Number.isFinite(x))
  if (v.length === 0) return { median: NaN, min: NaN, max: NaN, values: [] }
  return { median: median(v), min: Math.min(...v), max: Math.max(...v), values: v.map((x) => Math.round(x * 1000) / 1000) }
}

const measuredRuns = (runs: readonly RunRecord[], s: Scenario, p: PathName): RunRecord[] => runs.filter((r) => r.round >= 0 && r.scenario === s && r.path === p)

/** The same quantity of two paths, divided round by round (same round, same conditions). */
function perRound(runs: readonly RunRecord[], s: Scenario, num: PathName, den: PathName, f: (r: RunRecord) => number, op: 'ratio' | 'diff'): Stat {
  const d = new Map(measuredRuns(runs, s, den).map((r) => [r.round, f(r)]))
  return stat(measuredRuns(runs, s, num).map((r) => {
    const x = d.get(r.round)
    return x === undefined ? NaN : op === 'ratio' ? f(r) / x : f(r) - x
  }))
}

/** Median collections per unit of work in each daemon (client host, server host). */
function gcsPerUnit(rs: readonly RunRecord[]): { major: [number, number]; minor: [number, number]; pauseMs: [number, number] } {
  const per = (kind: 'major' | 'minor' | 'pauseMs', i: 0 | 1): number => median(rs.map((r) => (r.daemonGcs![kind]?.[i] ?? NaN) / SCENARIOS[r.scenario].work(r.out)))
  return { major: [per('major', 0), per('major', 1)], minor: [per('minor', 0), per('minor', 1)], pauseMs: [per('pauseMs', 0), per('pauseMs', 1)] }
}

function cpuPerUnit(r: RunRecord, procs: readonly Proc[]): number {
  const work = SCENARIOS[r.scenario].work(r.out)
  return work > 0 ? procs.reduce((s, p) => s + r.cpu[p], 0) / work : NaN
}

export interface Summary {
  throughput: Record<string, { title: string; paths: Record<string, Stat>; ratio: Stat; errors: Record<string, number> }>
  latency?: { paths: Record<string, { p50: Stat; p90: Stat; p99: Stat; maxms: number; failed: number; daemonGcPauses: number; gcs?: { major: [number, number]; minor: [number, number]; pauseMs: [number, number] } }>; added: Record<string, { p50: Stat; p90: Stat; p99: Stat }> }
  cpu: Record<string, { per: string; pair: Stat; hostmesh: Stat; ratio: Stat; byProcess: Record<Proc, number>; kernelShare: { pair: number; hostmesh: number }; gcsPerUnit?: { major: [number, number]; minor: [number, number]; pauseMs: [number, number] } }>
  rss: { atStart: Record<Proc, number>; peak: Record<Proc, number>; at1000L4?: Record<Proc, number>; at1000L7?: Record<Proc, number>; after: Record<Proc, number>; fresh?: { idle: Record<Proc, number>; at1000L4: Record<Proc, number>; at1000L7: Record<Proc, number> } }
  targets: Array<{ target: string; goal: string; today: string; met: boolean | undefined }>
}

export function summarise(runs: readonly RunRecord[], opts: PeerOptions, rss: { atStart: Record<Proc, number>; after: Record<Proc, number> }, fresh?: FreshDaemons): Summary {
  const throughput: Summary['throughput'] = {}
  const cpu: Summary['cpu'] = {}
  for (const s of opts.scenarios) {
    const spec = SCENARIOS[s]
    if (spec.value) {
      const value = spec.value
      const paths: Record<string, Stat> = {}
      const errors: Record<string, number> = {}
      for (const p of spec.paths) {
        const rs = measuredRuns(runs, s, p)
        paths[p] = stat(rs.map((r) => value(r.out)))
        errors[p] = rs.reduce((n, r) => n + (r.out.error ? 1 : 0) + Number(r.out.errors ?? 0) + Number(r.out.non2xx ?? 0), 0)
      }
      throughput[s] = { title: spec.title, paths, ratio: perRound(runs, s, spec.mesh, 'pair', (r) => value(r.out), 'ratio'), errors }
    }
    const meshRuns = measuredRuns(runs, s, spec.mesh)
    const pairRuns = measuredRuns(runs, s, 'pair')
    const byProcess = {} as Record<Proc, number>
    for (const [proxy, rs] of [['pair', pairRuns], ['hostmesh', meshRuns]] as const) {
      for (const p of PROCS[proxy]) byProcess[p] = median(rs.map((r) => cpuPerUnit(r, [p])))
    }
    const kernel = (rs: RunRecord[], procs: readonly Proc[]): number => median(rs.map((r) => procs.reduce((x, p) => x + r.systemCpu[p], 0) / procs.reduce((x, p) => x + r.cpu[p], 0)))
    cpu[s] = {
      per: spec.per,
      pair: stat(pairRuns.map((r) => cpuPerUnit(r, PROCS.pair))),
      hostmesh: stat(meshRuns.map((r) => cpuPerUnit(r, PROCS.hostmesh))),
      ratio: perRound(runs, s, spec.mesh, 'pair', (r) => cpuPerUnit(r, PROCS[proxyOf(r.path)!]), 'ratio'),
      byProcess,
      kernelShare: { pair: kernel(pairRuns, PROCS.pair), hostmesh: kernel(meshRuns, PROCS.hostmesh) },
      ...(meshRuns.length > 0 && meshRuns.every((r) => r.daemonGcs) ? { gcsPerUnit: gcsPerUnit(meshRuns) } : {}),
    }
  }
  let latency: Summary['latency']
  if (opts.scenarios.includes('latency')) {
    const q = (k: string) => (r: RunRecord): number => Number(r.out[k])
    const paths: NonNullable<Summary['latency']>['paths'] = {}
    const added: NonNullable<Summary['latency']>['added'] = {}
    for (const p of SCENARIOS.latency.paths) {
      const rs = measuredRuns(runs, 'latency', p)
      paths[p] = { p50: stat(rs.map(q('p50ms'))), p90: stat(rs.map(q('p90ms'))), p99: stat(rs.map(q('p99ms'))), maxms: Math.max(...rs.map(q('maxms'))), failed: rs.reduce((n, r) => n + Number(r.out.failed) + Number(r.out.non2xx), 0), daemonGcPauses: rs.reduce((n, r) => n + r.daemonGcPauses, 0), ...(p.startsWith('hostmesh') && rs.length > 0 && rs.every((r) => r.daemonGcs) ? { gcs: gcsPerUnit(rs) } : {}) }
      if (p !== 'direct') added[p] = { p50: perRound(runs, 'latency', p, 'direct', q('p50ms'), 'diff'), p90: perRound(runs, 'latency', p, 'direct', q('p90ms'), 'diff'), p99: perRound(runs, 'latency', p, 'direct', q('p99ms'), 'diff') }
    }
    latency = { paths, added }
  }
  const measured = runs.filter((r) => r.round >= 0)
  const maxOf = (rs: readonly RunRecord[]): Record<Proc, number> => {
    const m = {} as Record<Proc, number>
    for (const p of [...PROCS.pair, ...PROCS.hostmesh]) m[p] = Math.max(...rs.map((r) => r.rssPeakMiB[p]))
    return m
  }
  const l4 = measuredRuns(runs, 'latency', 'hostmesh')
  const l7 = measuredRuns(runs, 'latency', 'hostmesh-l7')
  const rssSummary: Summary['rss'] = {
    atStart: rss.atStart, peak: maxOf(measured), ...(l4.length ? { at1000L4: maxOf(l4) } : {}), ...(l7.length ? { at1000L7: maxOf(l7) } : {}), after: rss.after,
    ...(fresh ? { fresh: { idle: fresh.idleRssMiB, at1000L4: fresh.l4.rssPeakMiB, at1000L7: fresh.l7.rssPeakMiB } } : {}),
  }

  const targets: Summary['targets'] = []
  const f2 = (x: number): string => x.toFixed(2)
  const ratioTarget = (s: Scenario, name: string): void => {
    const t = throughput[s]
    if (!t || SCENARIOS[s].target === undefined) return
    targets.push({ target: name, goal: `≥ ${SCENARIOS[s].target!.toFixed(1)}× the pair`, today: `${f2(t.ratio.median)}× (${f2(t.ratio.min)}–${f2(t.ratio.max)})`, met: t.ratio.median >= SCENARIOS[s].target! })
  }
  ratioTarget('bulk', 'L4 bulk throughput')
  ratioTarget('conns', 'new connections/s')
  ratioTarget('keepalive', 'L4 keep-alive req/s')
  for (const [s, name] of [['bulk', 'proxy CPU s per GB'], ['conns', 'proxy CPU s per 1,000 connections']] as const) {
    const c = cpu[s]
    if (c) targets.push({ target: name, goal: '≤ the pair', today: `${c.hostmesh.median.toFixed(3)} vs ${c.pair.median.toFixed(3)} (${f2(c.ratio.median)}×)`, met: c.ratio.median <= 1 })
  }
  if (latency) {
    const a = latency.added.hostmesh!.p99
    const signed = (x: number): string => `${x >= 0 ? '+' : ''}${f2(x)}`
    targets.push({ target: 'p99 added at 1,000 req/s (L4 keep-alive)', goal: `≤ +${P99_ADDED_MS} ms`, today: `${signed(a.median)} ms (${signed(a.min)} to ${signed(a.max)})`, met: a.median <= P99_ADDED_MS })
  }
  if (rssSummary.at1000L4) {
    const larger = (m: Record<Proc, number>): number => Math.max(m['hostmesh-client'], m['hostmesh-server'])
    const after = larger(rssSummary.at1000L4)
    const f = rssSummary.fresh ? larger(rssSummary.fresh.at1000L4) : undefined
    const today = f === undefined ? `${after.toFixed(0)} MiB after the heavier loads` : `${f.toFixed(0)} MiB on fresh daemons; ${after.toFixed(0)} MiB after the heavier loads`
    targets.push({ target: 'RSS of one daemon at 1,000 req/s (L4, the larger of the two, peak)', goal: `≤ ${RSS_AT_1000_MIB} MB`, today, met: (f ?? after) <= RSS_AT_1000_MIB })
  }
  return { throughput, ...(latency ? { latency } : {}), cpu, rss: rssSummary, targets }
}

/** The scenarios where hostmesh misses its target (or, with no target, does less than the pair). */
export function targetsMissed(runs: readonly RunRecord[], opts: PeerOptions): Scenario[] {
  const s = summarise(runs, opts, { atStart: {} as Record<Proc, number>, after: {} as Record<Proc, number> })
  return opts.scenarios.filter((sc) => {
    const t = s.throughput[sc]
    if (t && t.ratio.median < (SCENARIOS[sc].target ?? 1)) return true
    if ((sc === 'bulk' || sc === 'conns') && s.cpu[sc]!.ratio.median > 1) return true
    return sc === 'latency' && s.latency!.added.hostmesh!.p99.median > P99_ADDED_MS
  })
}

export interface ReportInput {
  opts: PeerOptions
  runs: RunRecord[]
  versions: Record<string, unknown>
  tls: { protocol: string; cipher: string }
  rssAtStart: Record<Proc, number>
  rssAfter: Record<Proc, number>
  daemonMetrics: Record<'client' | 'server', Record<string, number>>
  haproxyStats: Record<'client' | 'server', Record<string, number>>
  profiles: ProfiledScenario[]
  perfRuns: PerfRun[]
  fresh?: FreshDaemons
  machine: { cpu: string; cores: number; memGiB: number; node: string }
  installed: string[]
  load: { before: string; rounds: string[]; afterRuns: string; after: string }
}

const fmt = (x: number, digits: number): string => (Number.isFinite(x) ? x.toFixed(digits) : '—')
const cell = (s: Stat | undefined, digits: number): string => (s && s.values.length ? `${fmt(s.median, digits)} (${fmt(s.min, digits)}–${fmt(s.max, digits)})` : '—')
const digitsOf = (s: Scenario): number => (s === 'bulk' ? 2 : 0)

/** Our code in a profile: the functions whose file is in this checkout (cpuprofile-summary names them by path). */
export function ownCode(p: ProfileSummary): { share: number; functions: ProfileSummary['functions'] } {
  const own = p.owners.filter((o) => o.name.startsWith('hostmesh '))
  return { share: own.reduce((s, o) => s + o.share, 0), functions: p.functions.filter((f) => / (daemon|certs|policy|base)\/\S+\.ts:\d+$/.test(f.name)) }
}

/** Prints the tables and returns the summary for the raw JSON. */
export function report(o: ReportInput): Summary {
  const s = summarise(o.runs, o.opts, { atStart: o.rssAtStart, after: o.rssAfter }, o.fresh)
  const v = o.versions
  console.log(`\nmachine: ${o.machine.cpu}, ${o.machine.cores} cores, ${o.machine.memGiB} GiB, node ${o.machine.node} (OpenSSL ${String(v.nodeOpenssl)})`)
  console.log(`load average: ${o.load.before} before, ${o.load.rounds.map((l, i) => `${l} at round ${i + 1}`).join(', ')}, ${o.load.afterRuns} after the runs, ${o.load.after} at the end`)
  console.log(`${String(v.haproxy)}; ${String(v.haproxyOpenssl)}; threads: ${JSON.stringify(v.haproxyThreads)} (nbthread default); ${String(v.iperf3)}; ${String(v.wrk)}; nginx ${String(v.nginx)} (1 worker)`)
  console.log(`pair TLS: ${o.tls.protocol} ${o.tls.cipher}, ECDSA P-256 leaves from the mesh root, verify required both ways${o.installed.length ? `; installed now: ${o.installed.join(' ')}` : ''}`)
  console.log(`\n${o.opts.rounds} rounds × ${o.opts.seconds} s, interleaved (path order rotating per round); median (min–max); ratio = hostmesh / pair within each round, median (min–max)\n`)

  console.log('| scenario | direct | HAProxy pair | hostmesh | hostmesh / pair | errors (direct/pair/hostmesh) |')
  console.log('|---|---|---|---|---|---|')
  for (const [sc, t] of Object.entries(s.throughput) as Array<[Scenario, Summary['throughput'][string]]>) {
    const spec = SCENARIOS[sc]
    const d = digitsOf(sc)
    const target = spec.target === undefined ? '' : ` (target ≥ ${spec.target.toFixed(1)})`
    console.log(`| ${t.title}${sc === 'http' ? '' : ''} | ${cell(t.paths.direct, d)} | ${cell(t.paths.pair, d)} | ${cell(t.paths[spec.mesh], d)} | **${fmt(t.ratio.median, 2)}** (${fmt(t.ratio.min, 2)}–${fmt(t.ratio.max, 2)})${target} | ${spec.paths.map((p) => t.errors[p]).join('/')} |`)
  }

  if (s.latency) {
    console.log(`\nlatency at ${SCENARIOS.latency.title} (scripts/bench/rate-client.ts, timed from each request's due time), ms:\n`)
    console.log('| path | p50 | p90 | p99 | max | failed | added p50 | added p90 | added p99 | daemons\' last-resort GCs during these runs | hostmesh per 1,000 requests: scavenges, mark-compacts, ms of GC (client host / server host) |')
    console.log('|---|---|---|---|---|---|---|---|---|---|---|')
    for (const [p, l] of Object.entries(s.latency.paths)) {
      const a = s.latency.added[p]
      console.log(`| ${p} | ${cell(l.p50, 2)} | ${cell(l.p90, 2)} | ${cell(l.p99, 2)} | ${fmt(l.maxms, 1)} | ${l.failed} | ${a ? cell(a.p50, 2) : ''} | ${a ? cell(a.p90, 2) : ''} | ${a ? `**${cell(a.p99, 2)}**` : ''} | ${l.daemonGcPauses} | ${l.gcs ? `${fmt(l.gcs.minor[0], 1)}, ${fmt(l.gcs.major[0], 1)}, ${fmt(l.gcs.pauseMs[0], 1)} / ${fmt(l.gcs.minor[1], 1)}, ${fmt(l.gcs.major[1], 1)}, ${fmt(l.gcs.pauseMs[1], 1)}` : ''} |`)
    }
  }

  console.log('\nproxy CPU (both processes, /proc utime+stime around each run), seconds per unit of work; in brackets each process (client host + server host) and the kernel\'s share:\n')
  console.log('| scenario | per | HAProxy pair | hostmesh | hostmesh / pair | hostmesh collections per unit: mark-compact, scavenge, ms of GC (client host / server host) |')
  console.log('|---|---|---|---|---|---|')
  for (const [sc, c] of Object.entries(s.cpu) as Array<[Scenario, Summary['cpu'][string]]>) {
    const b = c.byProcess
    const d = c.per === 'GB' ? 2 : 3
    console.log(`| ${sc}${sc === 'http' || sc === 'latency' ? (sc === 'http' ? ' (hostmesh L7)' : ' (hostmesh L4)') : ''} | ${c.per} | ${cell(c.pair, d)} [${fmt(b['haproxy-client'], d)} + ${fmt(b['haproxy-server'], d)}; ${fmt(c.kernelShare.pair * 100, 0)}% kernel] | ${cell(c.hostmesh, d)} [${fmt(b['hostmesh-client'], d)} + ${fmt(b['hostmesh-server'], d)}; ${fmt(c.kernelShare.hostmesh * 100, 0)}% kernel] | **${fmt(c.ratio.median, 2)}** (${fmt(c.ratio.min, 2)}–${fmt(c.ratio.max, 2)}) | ${c.gcsPerUnit ? `${fmt(c.gcsPerUnit.major[0], 1)}, ${fmt(c.gcsPerUnit.minor[0], 1)}, ${fmt(c.gcsPerUnit.pauseMs[0], 1)} / ${fmt(c.gcsPerUnit.major[1], 1)}, ${fmt(c.gcsPerUnit.minor[1], 1)}, ${fmt(c.gcsPerUnit.pauseMs[1], 1)}` : '—'} |`)
  }

  const r = s.rss
  const pairOf = (m: Record<Proc, number> | undefined, proxy: 'pair' | 'hostmesh'): string => (m ? `${fmt(m[PROCS[proxy][0]], 0)} + ${fmt(m[PROCS[proxy][1]], 0)} = **${fmt(m[PROCS[proxy][0]] + m[PROCS[proxy][1]], 0)}**` : '—')
  console.log('\nRSS, MiB (client host + server host = sum):\n')
  console.log('| proxy | at start | peak during the runs | at 1,000 req/s, L4 (peak) | at 1,000 req/s, L7 (peak) | after the runs |')
  console.log('|---|---|---|---|---|---|')
  for (const proxy of ['pair', 'hostmesh'] as const) {
    console.log(`| ${proxy === 'pair' ? 'HAProxy pair' : 'hostmesh'} | ${pairOf(r.atStart, proxy)} | ${pairOf(r.peak, proxy)} | ${pairOf(r.at1000L4, proxy)} | ${pairOf(r.at1000L7, proxy)} | ${pairOf(r.after, proxy)} |`)
  }
  if (r.fresh && o.fresh) {
    const f = r.fresh
    console.log(`| hostmesh, restarted after the rounds | ${pairOf(f.idle, 'hostmesh')} (idle 2 s) | | ${pairOf(f.at1000L4, 'hostmesh')} (cold: p99 ${String(o.fresh.l4.out.p99ms)} ms) | ${pairOf(f.at1000L7, 'hostmesh')} (cold: p99 ${String(o.fresh.l7.out.p99ms)} ms) | |`)
  }
  const m = o.daemonMetrics
  console.log(`\nhostmesh counted: L7 requests ${m.client.l7Requests} (not 200: ${m.client.l7Not200}) at node-a, ${m.server.l7Requests} (not 200: ${m.server.l7Not200}) at node-b; TCP connections opened ${m.client.tcpOpened} / ${m.server.tcpOpened}; last-resort GCs (run/memory.ts) ${m.client.gcPauses} / ${m.server.gcPauses}; heap used after the runs ${m.client.heapUsedMiB} / ${m.server.heapUsedMiB} MiB`)

  const h = o.haproxyStats
  console.log(`HAProxy counted: TLS connections ${h.client.CumSslConns} (node-a, nbthread ${h.client.Nbthread}) / ${h.server.CumSslConns} (node-b, nbthread ${h.server.Nbthread}); peak handshakes/s ${h.server.MaxSslRate} on node-b, of which full (key computations) ${h.server.SslFrontendMaxKeyRate}: the rest resumed`)

  console.log('\nissue #14 targets:\n')
  console.log('| target | goal | today | met |')
  console.log('|---|---|---|---|')
  for (const t of s.targets) console.log(`| ${t.target} | ${t.goal} | ${t.today} | ${t.met === undefined ? '?' : t.met ? 'yes' : '**no**'} |`)

  for (const p of o.perfRuns) {
    const procs = Object.keys(p.processes) as Proc[]
    console.log(`\nperf: ${p.scenario} on ${p.path}, ${o.opts.profileSeconds} s: ${SCENARIOS[p.scenario].value ? fmt(SCENARIOS[p.scenario].value!(p.run.out), digitsOf(p.scenario)) : `p99 ${String(p.run.out.p99ms)} ms`}; CPU (/proc) ${procs.map((w) => `${w} ${p.run.cpu[w]} s`).join(', ')}; share of each process's samples:\n`)
    const cats = [...new Set(procs.flatMap((w) => p.processes[w]!.categories.map((c) => c.name)))]
    console.log(`| component | ${procs.join(' | ')} |\n|---|${procs.map(() => '---').join('|')}|`)
    for (const c of cats) console.log(`| ${c} | ${procs.map((w) => `${(((p.processes[w]!.categories.find((x) => x.name === c)?.share) ?? 0) * 100).toFixed(1)}%`).join(' | ')} |`)
    for (const w of procs) console.log(`\n${w}, top symbols: ${p.processes[w]!.top.slice(0, 8).map((t) => `${t.name} ${(t.share * 100).toFixed(1)}%`).join('; ')}`)
  }

  for (const p of o.profiles) {
    console.log(`\nprofile: ${p.scenario} on ${p.path}, ${o.opts.profileSeconds} s under --cpu-prof: ${SCENARIOS[p.scenario].value ? fmt(SCENARIOS[p.scenario].value!(p.run.out), digitsOf(p.scenario)) : `p99 ${String(p.run.out.p99ms)} ms`}; daemon CPU (/proc) ${p.run.cpu['hostmesh-client']} s + ${p.run.cpu['hostmesh-server']} s`)
    for (const who of ['client', 'server'] as const) {
      const x = p.daemons[who]
      const own = ownCode(x)
      console.log(`\n${who} host's daemon: busy ${x.busyMs} of ${x.wallMs} ms (load window only, sample ${x.intervalUs} µs); our code ${(own.share * 100).toFixed(1)}% of busy; ${x.file}\n`)
      console.log('| owner (self time) | of busy |\n|---|---|')
      for (const w of x.owners.slice(0, 12)) console.log(`| ${w.name} | ${(w.share * 100).toFixed(1)}% |`)
      console.log('\n| function (self time) | of busy |\n|---|---|')
      for (const f of x.functions.slice(0, 12)) console.log(`| ${f.name} | ${(f.share * 100).toFixed(1)}% |`)
      console.log('\n| our function (self time) | of busy |\n|---|---|')
      for (const f of own.functions.slice(0, 10)) console.log(`| ${f.name} | ${(f.share * 100).toFixed(1)}% |`)
    }
  }
  return s
}
