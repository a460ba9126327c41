// hostmesh with `workers: 1` against `workers: 2` (docs/workers.md), in one run, on the same two
// namespace hosts, servers and clients as scripts/bench/peer.ts (issue #14): node-a the client
// host, node-b the server host, the real `hostmesh run` on both. Each round runs every scenario
// once with direct (no daemon running: what the pinned clients and servers manage on their
// own), then with both daemons started as workers 1 and as workers 2, which setting goes first
// alternating by round so drift hits both alike. Each start is checked: /metrics must say
// hostmesh_workers is the setting, on both hosts, before and after the runs.
// Scenarios: bulk (iperf3, 1 connection), bulk4 (iperf3 -P 4: one connection only ever uses
// one worker), conns (wrk -c16, `Connection: close`), keepalive (wrk -c64), http (wrk -c64
// through the http Service: the L7 path on both hosts); nginx's 1 KiB.
// On 2 cores the clients and servers are pinned to CPU 1 (taskset -c 1) and the daemons left
// free, so a second worker can have CPU 0 to itself; it still shares CPU 1 with them.
// Options: --seconds N (each run, default 5), --rounds N (default 3). Needs root.
import { execFile } from 'node:child_process'
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { readdir, readFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs, promisify } from 'node:util'
import { parseMetrics, total } from '../demo/telemetry.ts'
import { untilReady } from '../netns/mesh-nodes.ts'
import { withTestNet, type HostProcess, type TestHost } from '../netns/hosts.ts'
import { writeResults } from './results.ts'
import { ensureDebianTools } from './debian-tools.ts'
import { BODY, CLIENT_UID, HTTP_PLAIN, IPERF_MESH, IPERF_PLAIN, L4_VIP, L7_VIP, LOG_LEVEL, peerFiles, peerNodeConfigs, SERVER_UID } from './peer-hosts.ts'
import type { Outcome } from './peer-report.ts'
import { cmdline, cpuSeconds, loadavg, rssMiB } from './proc-stat.ts'
import { median } from './stats.ts'

const here = (f: string): string => new URL(f, import.meta.url).pathname
const CLI = here('../../daemon/cli.ts')
const PIN = ['taskset', '-c', '1']
const TOOLS = { taskset: 'util-linux', iperf3: 'iperf3', wrk: 'wrk', nginx: 'nginx', curl: 'curl' } as const

type Scenario = 'bulk' | 'bulk4' | 'conns' | 'keepalive' | 'http'
type Setting = 'direct' | 'workers-1' | 'workers-2'
type Daemon = 'client' | 'server'
const gb = (o: Outcome): number => Number(o.bytes) / 1e9
const kreq = (o: Outcome): number => Number(o.requests) / 1000
const SCENARIOS: Record<Scenario, { title: string; value: (o: Outcome) => number; work: (o: Outcome) => number; per: string }> = {
  bulk: { title: 'L4 bulk, 1 connection (iperf3, Gbit/s)', value: (o) => Number(o.gbps), work: gb, per: 'GB' },
  bulk4: { title: 'L4 bulk, 4 connections (iperf3 -P 4, Gbit/s)', value: (o) => Number(o.gbps), work: gb, per: 'GB' },
  conns: { title: 'L4 new connections/s (wrk -c16, `Connection: close`, 1 KiB)', value: (o) => Number(o.rate), work: kreq, per: '1k conns' },
  keepalive: { title: 'L4 keep-alive req/s (wrk -c64, 1 KiB)', value: (o) => Number(o.rate), work: kreq, per: '1k req' },
  http: { title: 'L7 HTTP req/s (wrk -c64, http Service + HTTPRoute)', value: (o) => Number(o.rate), work: kreq, per: '1k req' },
}
const ALL = Object.keys(SCENARIOS) as Scenario[]

/** A thread's CPU seconds during a run, by its name in /proc (node's main thread is `node`). */
interface ThreadCpu { tid: number; comm: string; seconds: number }
interface Run {
  round: number
  setting: Setting
  scenario: Scenario
  out: Outcome
  wallSeconds: number
  /** Both daemons (all their threads), absent for direct. */
  cpu?: Record<Daemon, number>
  rssPeakMiB?: Record<Daemon, number>
  /** Each daemon's busiest threads: whether 2 workers split the work or one carried it. */
  threads?: Record<Daemon, ThreadCpu[]>
}

function options(args: readonly string[]): { seconds: number; rounds: number } {
  const { values } = parseArgs({ args: [...args], strict: true, allowPositionals: false, options: { seconds: { type: 'string' }, rounds: { type: 'string' } } })
  const num = (name: string, v: string | undefined, dflt: number): number => {
    const n = Number(v ?? dflt)
    if (!Number.isInteger(n) || n < 1) throw new Error(`--${name} takes a whole number ≥ 1, not "${v}"`)
    return n
  }
  return { seconds: num('seconds', values.seconds, 5), rounds: num('rounds', values.rounds, 3) }
}

export async function benchWorkers(args: readonly string[] = []): Promise<void> {
  const opts = options(args)
  if (cpus().length < 2) throw new Error('workers: needs 2 CPUs (clients and servers on CPU 1, CPU 0 for the daemons)')
  const installed = await ensureDebianTools(TOOLS)
  const { dir, io, nginxDir } = peerFiles('workers')
  try {
    const loadBefore = await loadavg()

    await withTestNet({ hosts: ['node-a', 'node-b'] }, async (net) => {
      const [a, b] = [net.host('node-a'), net.host('node-b')]
      // Without TIME_WAIT reuse (peer-hosts.ts) the first setting's `Connection: close` run left
      // the second's hunting for ports: 2 vs 1 swung from 0.35 to 4.8 by order alone.
      const base = await peerNodeConfigs(net, dir)
      // One CA and one config per host; a copy of it per setting.
      const configFor = (h: TestHost, n: 1 | 2): string => {
        const f = base.get(h.name)!.replace(/\.yaml$/, `-workers-${n}.yaml`)
        writeFileSync(f, `${readFileSync(base.get(h.name)!, 'utf8')}workers: ${n}\n`)
        return f
      }
      const configs = { 1: { a: configFor(a, 1), b: configFor(b, 1) }, 2: { a: configFor(a, 2), b: configFor(b, 2) } }

      const nginx = b.spawn([...PIN, 'nginx', '-p', nginxDir, '-c', join(nginxDir, 'nginx.conf'), '-e', 'stderr', '-g', 'daemon off;'], { uid: SERVER_UID, gid: SERVER_UID })
      const iperfServers = [IPERF_MESH, IPERF_PLAIN].map((port) => b.spawn([...PIN, 'iperf3', '-s', '--forceflush', '-p', String(port)], { uid: SERVER_UID, gid: SERVER_UID }))
      for (const s of iperfServers) await s.waitFor(/Server listening/)
      const affinity = { nginx: await cpusAllowed(nginx.pid), iperf3: await cpusAllowed(iperfServers[0]!.pid), daemons: '' }
      if (affinity.nginx !== '1' || affinity.iperf3 !== '1') throw new Error(`the servers are not pinned to CPU 1: ${JSON.stringify(affinity)}`)

      const url = (s: Setting, scenario: Scenario): string =>
        s === 'direct' ? `http://${b.ipv4}:${HTTP_PLAIN}/1k` : `http://${scenario === 'http' ? L7_VIP : L4_VIP}/1k`
      // The client uid is the one captured; root on node-a goes straight to node-b.
      const as = (s: Setting): { uid: number; gid: number } => (s === 'direct' ? { uid: 0, gid: 0 } : { uid: CLIENT_UID, gid: CLIENT_UID })
      const iperf = async (s: Setting, streams: number, seconds: number): Promise<Outcome> => {
        const [host, port] = s === 'direct' ? [b.ipv4, IPERF_PLAIN] : [L4_VIP, IPERF_MESH]
        const r = await a.exec([...PIN, 'iperf3', '-c', host, '-p', String(port), '-P', String(streams), '-t', String(seconds), '-J'], { ...as(s), timeoutMs: (seconds + 30) * 1000 })
        const j = JSON.parse(r.stdout || '{}') as { error?: string; end?: { sum_received?: { bytes: number; seconds: number } } }
        const rx = j.end?.sum_received
        if (j.error || !rx) return { bytes: 0, seconds: 0, gbps: NaN, error: j.error ?? (r.stderr.trim() || `iperf3 exit ${r.code}`) }
        return { bytes: rx.bytes, seconds: rx.seconds, gbps: (rx.bytes * 8) / rx.seconds / 1e9 }
      }
      const wrk = async (s: Setting, scenario: Scenario, conns: number, seconds: number, close: boolean): Promise<Outcome> => {
        const out = await a.mustExec([...PIN, 'wrk', '-t2', `-c${conns}`, `-d${seconds}s`, '--timeout', '5s', ...(close ? ['-H', 'Connection: close'] : []), '-s', here('./wrk-report.lua'), url(s, scenario)], { ...as(s), timeoutMs: (seconds + 30) * 1000 })
        const w = JSON.parse(out.trim().split('\n').at(-1)!) as { requests: number; seconds: number; errors: number; non2xx: number }
        return { ...w, rate: w.requests / w.seconds }
      }
      const load = (s: Setting, scenario: Scenario, seconds: number): Promise<Outcome> => {
        switch (scenario) {
          case 'bulk': return iperf(s, 1, seconds)
          case 'bulk4': return iperf(s, 4, seconds)
          case 'conns': return wrk(s, scenario, 16, seconds, true)
          case 'keepalive': return wrk(s, scenario, 64, seconds, false)
          case 'http': return wrk(s, scenario, 64, seconds, false)
        }
      }

      const metrics = async (h: TestHost): Promise<{ workers: number; restarts: number }> => {
        const m = parseMetrics(await h.mustExec(['curl', '-sS', '-m', '5', 'http://127.0.0.1:15000/metrics']))
        return { workers: total(m, 'hostmesh_workers'), restarts: total(m, 'hostmesh_worker_restarts_total') }
      }
      const workersSeen: Array<{ round: number; setting: Setting; when: 'start' | 'end'; client: number; server: number; restarts: number }> = []
      const checkWorkers = async (round: number, setting: Setting, n: number, when: 'start' | 'end'): Promise<void> => {
        const [ma, mb] = [await metrics(a), await metrics(b)]
        workersSeen.push({ round, setting, when, client: ma.workers, server: mb.workers, restarts: ma.restarts + mb.restarts })
        if (ma.workers !== n || mb.workers !== n) throw new Error(`${setting}: hostmesh_workers is ${ma.workers} on node-a and ${mb.workers} on node-b, not ${n}`)
      }
      const startDaemons = async (n: 1 | 2): Promise<Record<Daemon, HostProcess>> => {
        const start = async (h: TestHost, config: string): Promise<HostProcess> => {
          const d = h.spawn([process.execPath, CLI, 'run', '--config', config])
          await untilReady(h, d)
          const argv = await cmdline(d.pid)
          if (!argv.includes(CLI)) throw new Error(`pid ${d.pid} runs "${argv.join(' ')}", not the daemon`)
          return d
        }
        return { client: await start(a, configs[n].a), server: await start(b, configs[n].b) }
      }
      // Every hostmesh path answers 200 with the 1 KiB body (the VIPs route nowhere but through capture).
      const expectBody = async (s: Setting, scenario: Scenario): Promise<void> => {
        let last = ''
        for (let i = 0; i < 50; i++) {
          const r = await a.exec(['curl', '-sS', '-m', '2', '-i', url(s, scenario)], { ...as(s), timeoutMs: 5000 })
          last = `${r.stdout}${r.stderr}`
          if (r.stdout.startsWith('HTTP/1.1 200') && r.stdout.endsWith(BODY.toString())) return
          await sleep(100)
        }
        throw new Error(`${s} ${scenario}: ${url(s, scenario)} did not answer 200 with 1 KiB:\n${last.slice(0, 1500)}`)
      }

      const hz = Number((await promisify(execFile)('getconf', ['CLK_TCK'])).stdout.trim()) || 100
      const measured = async (round: number, setting: Setting, scenario: Scenario, daemons?: Record<Daemon, HostProcess>): Promise<Run> => {
        const pids = daemons ? { client: daemons.client.pid, server: daemons.server.pid } : undefined
        const c0 = pids && { client: await cpuSeconds(pids.client), server: await cpuSeconds(pids.server) }
        const t0 = pids && { client: await threadTicks(pids.client), server: await threadTicks(pids.server) }
        const peak = pids && { client: await rssMiB(pids.client), server: await rssMiB(pids.server) }
        let sampling = pids !== undefined
        const sampler = (async () => {
          // Bounded by the load's own timeout: `sampling` ends when it settles either way.
          while (sampling && pids && peak) {
            await sleep(250)
            for (const k of ['client', 'server'] as const) peak[k] = Math.max(peak[k], await rssMiB(pids[k]).catch(() => 0))
          }
        })()
        const start = performance.now()
        const out = await load(setting, scenario, opts.seconds).finally(() => { sampling = false })
        const wallSeconds = round3((performance.now() - start) / 1000)
        await sampler
        const run: Run = { round, setting, scenario, out, wallSeconds }
        if (pids && c0 && t0 && peak) {
          run.cpu = { client: round3((await cpuSeconds(pids.client)).all - c0.client.all), server: round3((await cpuSeconds(pids.server)).all - c0.server.all) }
          run.rssPeakMiB = { client: Math.round(peak.client * 10) / 10, server: Math.round(peak.server * 10) / 10 }
          run.threads = { client: busiest(t0.client, await threadTicks(pids.client), hz), server: busiest(t0.server, await threadTicks(pids.server), hz) }
        }
        process.stderr.write(`round ${round + 1}/${opts.rounds} ${setting} ${scenario}: ${brief(run)}\n`)
        return run
      }

      console.log(`workers: ${ALL.join(', ')}; ${opts.rounds} rounds of ${opts.seconds} s; clients (wrk, iperf3 -c) and servers (nginx, iperf3 -s) pinned to CPU 1 with taskset -c 1; both daemons unpinned (CPUs ${(await readFile('/sys/devices/system/cpu/online', 'utf8')).trim()})`)
      const runs: Run[] = []
      const roundLoads: string[] = []
      for (let round = 0; round < opts.rounds; round++) {
        roundLoads.push(await loadavg())
        for (const s of ALL) runs.push(await measured(round, 'direct', s))
        const order: Array<1 | 2> = round % 2 === 0 ? [1, 2] : [2, 1]
        for (const n of order) {
          const setting: Setting = `workers-${n}`
          const daemons = await startDaemons(n)
          try {
            affinity.daemons = await cpusAllowed(daemons.client.pid)
            await expectBody(setting, 'keepalive')
            await expectBody(setting, 'http')
            await checkWorkers(round, setting, n, 'start')
            // Warm-up: each thread's HBONE session, the pools, the JIT.
            for (const s of ALL) await load(setting, s, 2)
            for (const s of ALL) runs.push(await measured(round, setting, s, daemons))
            await checkWorkers(round, setting, n, 'end')
          } finally {
            await Promise.all([daemons.client.stop('SIGTERM', 20_000), daemons.server.stop('SIGTERM', 20_000)])
          }
        }
      }
      const first = async (h: TestHost, cmd: string[]): Promise<string> => { const r = await h.exec(cmd); return `${r.stdout}${r.stderr}`.trim().split('\n')[0] ?? '?' }
      const versions = {
        iperf3: await first(a, ['iperf3', '--version']),
        wrk: (await first(a, ['wrk', '-v'])).split(' ').slice(0, 2).join(' '),
        nginx: (await first(b, ['nginx', '-v'])).replace(/^nginx version: /, ''),
        node: process.version,
      }
      await nginx.stop()
      for (const s of iperfServers) await s.stop()

      const summary = report(runs)
      console.log(`CPUs allowed: daemons ${affinity.daemons}, nginx ${affinity.nginx}, iperf3 -s ${affinity.iperf3}`)
      const machine = { cpu: cpus()[0]?.model ?? 'cpu', cores: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version }
      const at = new Date().toISOString()
      const raw = {
        bench: 'workers', at, machine, loadavg: { before: loadBefore, rounds: roundLoads, after: await loadavg() }, versions, installed,
        params: { ...opts, responseBytes: BODY.length, daemonLogLevel: LOG_LEVEL, pinning: 'clients and servers: taskset -c 1; daemons: unpinned', cpusAllowed: affinity },
        summary, workersSeen, runs,
      }
      const file = await writeResults('workers', raw, at)
      console.log(`\nraw: ${file}`)
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
    rmSync(io, { recursive: true, force: true })
  }
}

const round3 = (x: number): number => Math.round(x * 1000) / 1000

async function cpusAllowed(pid: number): Promise<string> {
  return /^Cpus_allowed_list:\s*(\S+)/m.exec(await readFile(`/proc/${pid}/status`, 'utf8'))?.[1] ?? '?'
}

/** utime + stime of each thread of `pid`, in clock ticks. */
async function threadTicks(pid: number): Promise<Map<number, { comm: string; ticks: number }>> {
  const m = new Map<number, { comm: string; ticks: number }>()
  for (const tid of await readdir(`/proc/${pid}/task`)) {
    const stat = await readFile(`/proc/${pid}/task/${tid}/stat`, 'utf8').catch(() => '')
    const close = stat.lastIndexOf(')')
    if (close < 0) continue
    const f = stat.slice(close + 2).split(' ')
    m.set(Number(tid), { comm: stat.slice(stat.indexOf('(') + 1, close), ticks: Number(f[11]) + Number(f[12]) })
  }
  return m
}

function busiest(before: Map<number, { ticks: number }>, after: Map<number, { comm: string; ticks: number }>, hz: number): ThreadCpu[] {
  return [...after].map(([tid, t]) => ({ tid, comm: t.comm, seconds: round3((t.ticks - (before.get(tid)?.ticks ?? 0)) / hz) }))
    .filter((t) => t.seconds >= 0.05).sort((x, y) => y.seconds - x.seconds).slice(0, 4)
}

function brief(r: Run): string {
  const o = r.out
  const rate = o.error ? `error: ${o.error}` : r.scenario.startsWith('bulk') ? `${Number(o.gbps).toFixed(2)} Gbit/s` : `${Number(o.rate).toFixed(0)}/s, errors ${o.errors}, non-2xx ${o.non2xx}`
  if (!r.cpu || !r.threads) return rate
  const split = (d: Daemon): string => r.threads![d].map((t) => t.seconds.toFixed(1)).join('/')
  return `${rate}; daemon CPU ${r.cpu.client.toFixed(1)} + ${r.cpu.server.toFixed(1)} s (busiest threads a ${split('client')}, b ${split('server')})`
}

interface Stat { median: number; min: number; max: number }
function stat(xs: readonly number[]): Stat {
  const v = xs.filter((x) => Number.isFinite(x))
  return v.length === 0 ? { median: NaN, min: NaN, max: NaN } : { median: median(v), min: Math.min(...v), max: Math.max(...v) }
}

/** Prints the table and returns what it shows. */
function report(runs: readonly Run[]): Record<Scenario, Record<string, unknown>> {
  const of = (s: Scenario, setting: Setting): Run[] => runs.filter((r) => r.scenario === s && r.setting === setting)
  const fmt = (x: number, bulk: boolean): string => (Number.isNaN(x) ? '—' : bulk ? x.toFixed(2) : x >= 1000 ? `${(x / 1000).toFixed(1)}k` : x.toFixed(0))
  const range = (st: Stat, bulk: boolean): string => `${fmt(st.median, bulk)} (${fmt(st.min, bulk)}–${fmt(st.max, bulk)})`
  const cpuPer = (r: Run): number => { const w = SCENARIOS[r.scenario].work(r.out); return r.cpu && w > 0 ? (r.cpu.client + r.cpu.server) / w : NaN }
  // The busiest thread's part of the daemon's CPU: near 1 when one thread carried everything.
  const topShare = (r: Run, d: Daemon): number => (r.cpu && r.threads?.[d][0] && r.cpu[d] > 0 ? r.threads[d][0].seconds / r.cpu[d] : NaN)
  const summary = {} as Record<Scenario, Record<string, unknown>>
  console.log('\n| scenario | workers 1: median (min–max) | workers 2: median (min–max) | 2 vs 1 (per round) | daemons\' CPU s per unit, w1 / w2 | peak RSS MiB a+b, w1 / w2 | busiest thread share a/b, w1 / w2 | direct (reference) | errors w1 / w2 |')
  console.log('|---|---|---|---|---|---|---|---|---|')
  for (const s of ALL) {
    const spec = SCENARIOS[s]
    const bulk = s.startsWith('bulk')
    const [w1, w2, direct] = (['workers-1', 'workers-2', 'direct'] as const).map((k) => of(s, k))
    const rate = (rs: Run[]): Stat => stat(rs.map((r) => spec.value(r.out)))
    const byRound = new Map(w1!.map((r) => [r.round, spec.value(r.out)]))
    const ratio = stat(w2!.map((r) => spec.value(r.out) / (byRound.get(r.round) ?? NaN)))
    const cpu = [w1!, w2!].map((rs) => stat(rs.map(cpuPer)).median)
    const rss = [w1!, w2!].map((rs) => ({ client: Math.max(...rs.map((r) => r.rssPeakMiB?.client ?? 0)), server: Math.max(...rs.map((r) => r.rssPeakMiB?.server ?? 0)) }))
    const share = [w1!, w2!].map((rs) => ({ client: stat(rs.map((r) => topShare(r, 'client'))).median, server: stat(rs.map((r) => topShare(r, 'server'))).median }))
    const errors = [w1!, w2!].map((rs) => rs.reduce((n, r) => n + (r.out.error ? 1 : 0) + Number(r.out.errors ?? 0) + Number(r.out.non2xx ?? 0), 0))
    summary[s] = { title: spec.title, per: spec.per, workers1: rate(w1!), workers2: rate(w2!), ratio, cpuPerUnit: { workers1: cpu[0], workers2: cpu[1] }, rssPeakMiB: { workers1: rss[0], workers2: rss[1] }, busiestThreadShare: { workers1: share[0], workers2: share[1] }, direct: rate(direct!), errors: { workers1: errors[0], workers2: errors[1] } }
    const pct = (x: number): string => (Number.isNaN(x) ? '—' : `${Math.round(x * 100)}%`)
    console.log(`| ${spec.title} | ${range(rate(w1!), bulk)} | ${range(rate(w2!), bulk)} | **${ratio.median.toFixed(2)}** (${ratio.min.toFixed(2)}–${ratio.max.toFixed(2)}) | ${cpu[0]!.toFixed(2)} / ${cpu[1]!.toFixed(2)} per ${spec.per} | ${rss[0]!.client.toFixed(0)}+${rss[0]!.server.toFixed(0)} / ${rss[1]!.client.toFixed(0)}+${rss[1]!.server.toFixed(0)} | ${pct(share[0]!.client)}/${pct(share[0]!.server)}, ${pct(share[1]!.client)}/${pct(share[1]!.server)} | ${range(rate(direct!), bulk)} | ${errors[0]} / ${errors[1]} |`)
  }
  console.log('\nCPU and RSS: both daemons, every thread (/proc/<pid>/stat). Clients and servers on CPU 1 (taskset), the daemons free on CPU 0 and 1.')
  return summary
}

if (import.meta.main) await benchWorkers(process.argv.slice(2))
