// HTTP/1.1 keep-alive through the mesh against direct, on the same two namespace hosts as the
// mesh bench (each runs the real `hostmesh run`, own node CA, real iptables capture), interleaved
// in one run. The mesh path is the full L7 path on both hosts: a client workload (uid 3001,
// node-a) calls a Service VIP's http port → capture → HTTPRoute → endpoint → pooled HBONE →
// node-b's destination authorize → the server workload (uid 3002: nginx, else a node server)
// over a keep-alive pool. Direct: root on node-a (never captured) to a second port of the same
// server that no rule redirects. Measures: req/s at 64 connections (wrk); latency at a fixed
// 1,000 req/s (h2load --rps, per-request log); each daemon's CPU per 1,000 requests and RSS.
// Then once more with both daemons under --cpu-prof, and the top self-time functions of each.
// Needs root, wrk and h2load. Raw results go to scripts/bench/results/.
import { execFile } from 'node:child_process'
import { chmodSync, chownSync, mkdirSync, mkdtempSync, readdirSync, rmSync, writeFileSync } from 'node:fs'
import { mkdir, readFile, rm, writeFile } from 'node:fs/promises'
import { cpus, tmpdir, totalmem } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { parseMetrics, total } from '../demo/telemetry.ts'
import { meshNodeConfigs, untilReady } from '../netns/mesh-nodes.ts'
import { withTestNet, type HostProcess, type TestHost } from '../netns/hosts.ts'
import { summariseFile, type ProfileSummary } from './cpuprofile-summary.ts'
import { median, percentile } from './stats.ts'

const execFileP = promisify(execFile)
const here = (f: string): string => new URL(f, import.meta.url).pathname
const CLI = here('../../daemon/cli.ts')
const NODE = process.execPath

const CONNS = 64
const SECONDS = 5
const ROUNDS = 3
const RATE = 1000
const RATE_CLIENTS = 16
const PROFILE_SECONDS = 10
const CLIENT_UID = 3001
const SERVER_UID = 3002
const VIP = '10.96.1.2'
const PORT = 8080 // the workload's http port: captured on node-b, reached through the mesh
const DIRECT_PORT = 8081 // same server, no rule redirects it
const BODY = Buffer.alloc(1024, 'x')

const V = 'apiVersion: hostmesh.io/v1alpha1\n'
const POLICY = [
  `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [10.77.0.11]}\n`,
  `${V}kind: Node\nmetadata: {name: node-b}\nspec: {addresses: [10.77.0.12]}\n`,
  `${V}kind: Workload\nmetadata: {name: client, namespace: bench}\nspec: {node: node-a, serviceAccount: client, match: {uid: ${CLIENT_UID}}}\n`,
  `${V}kind: Workload\nmetadata: {name: server, namespace: bench, labels: {app: server}}\nspec: {node: node-b, serviceAccount: server, match: {uid: ${SERVER_UID}}, ports: [{name: http, port: ${PORT}}]}\n`,
  `${V}kind: Service\nmetadata: {name: server, namespace: bench}\nspec: {addresses: [${VIP}], ports: [{name: http, port: 80, protocol: http, targetPort: ${PORT}}], selector: {app: server}}\n`,
  `${V}kind: HTTPRoute\nmetadata: {name: server, namespace: bench}\nspec:\n  parentRefs: [{name: server, port: 80}]\n  rules: [{backendRefs: [{name: server, port: 80}]}]\n`,
].join('---\n')

const NGINX_CONF = (dir: string): string => `worker_processes 1;
pid ${dir}/nginx.pid;
error_log stderr warn;
events { worker_connections 1024; }
http {
  access_log off;
  client_body_temp_path ${dir}/tmp/body;
  proxy_temp_path ${dir}/tmp/proxy;
  fastcgi_temp_path ${dir}/tmp/fastcgi;
  uwsgi_temp_path ${dir}/tmp/uwsgi;
  scgi_temp_path ${dir}/tmp/scgi;
  default_type application/octet-stream;
  keepalive_timeout 300s;
  keepalive_requests 10000000;
  server {
    listen ${PORT};
    listen ${DIRECT_PORT};
    root ${dir}/www;
  }
}
`

type Path = 'direct' | 'mesh'
interface Wrk { requests: number; seconds: number; errors: number; non2xx: number; p50ms: number; p99ms: number }
interface Fixed { requests: number; failed: number; non2xx: number; seconds: number; rate: number; p50ms: number; p90ms: number; p99ms: number; maxms: number; overIntervalMs: number }
interface Cpu { source: number; destination: number }
interface Run<T> { round: number; path: Path; result: T; daemonCpuSeconds: Cpu }

async function has(cmd: string, args: string[]): Promise<string | undefined> {
  try {
    const { stdout, stderr } = await execFileP(cmd, args)
    return `${stdout}${stderr}`.trim().split('\n')[0]
  } catch (e) {
    const err = e as { code?: unknown; stdout?: string; stderr?: string }
    return err.code === 'ENOENT' ? undefined : `${err.stdout ?? ''}${err.stderr ?? ''}`.trim().split('\n')[0] ?? cmd
  }
}

let clockTicks = 100
/** utime + stime of a process, in seconds. */
async function cpuSeconds(pid: number): Promise<number> {
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // f[0] is field 3 (state)
  return (Number(f[11]) + Number(f[12])) / clockTicks
}

async function rssMiB(pid: number): Promise<number> {
  const m = /VmRSS:\s+(\d+) kB/.exec(await readFile(`/proc/${pid}/status`, 'utf8'))
  return m ? Math.round(Number(m[1]) / 1024) : NaN
}

/** The daemon's own pid: `ip netns exec` execs node in place, so the spawned pid is node's. */
async function daemonPid(d: HostProcess): Promise<number> {
  const argv = (await readFile(`/proc/${d.pid}/cmdline`, 'utf8')).split('\0')
  if (argv[0] === 'ip' || !argv.includes(CLI)) throw new Error(`pid ${d.pid} runs "${argv.join(' ')}", not the daemon`)
  return d.pid
}

export async function benchHttpMesh(): Promise<void> {
  const [wrkV, h2loadV, nginxV] = [await has('wrk', ['-v']), await has('h2load', ['--version']), await has('nginx', ['-v'])]
  if (!wrkV || !h2loadV) {
    console.log(`SKIPPED: needs wrk and h2load (apt-get install -y wrk nghttp2-client); found wrk: ${wrkV ? 'yes' : 'no'}, h2load: ${h2loadV ? 'yes' : 'no'}`)
    return
  }
  clockTicks = Number((await execFileP('getconf', ['CLK_TCK'])).stdout.trim()) || 100
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-bench-http-mesh-'))
  // What the workload uids write (nginx's prefix, h2load's per-request log): a tree they can enter.
  const io = mkdtempSync(join(tmpdir(), 'hostmesh-bench-http-mesh-io-'))
  const profDir = mkdtempSync(join(tmpdir(), 'hostmesh-bench-http-mesh-prof-'))
  try {
    chmodSync(io, 0o755)
    const nginxDir = join(io, 'nginx')
    const logDir = join(io, 'logs')
    for (const d of [nginxDir, join(nginxDir, 'tmp'), join(nginxDir, 'www')]) { mkdirSync(d); chownSync(d, SERVER_UID, SERVER_UID) }
    writeFileSync(join(nginxDir, 'www', '1k'), BODY)
    writeFileSync(join(nginxDir, 'nginx.conf'), NGINX_CONF(nginxDir))
    chmodSync(join(nginxDir, 'www', '1k'), 0o644)
    chmodSync(join(nginxDir, 'nginx.conf'), 0o644)
    mkdirSync(logDir)
    chownSync(logDir, CLIENT_UID, CLIENT_UID)
    mkdirSync(join(dir, 'policy.d'))
    writeFileSync(join(dir, 'policy.d', 'policy.yaml'), POLICY)

    await withTestNet({ hosts: ['node-a', 'node-b'] }, async (net) => {
      const [a, b] = [net.host('node-a'), net.host('node-b')]
      const configs = await meshNodeConfigs(net.hosts, dir, { policyDir: join(dir, 'policy.d'), ipv6: false, extra: 'logLevel: warn\ndrainSeconds: 1\n' })
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
        : b.spawn([NODE, here('./http-mesh-server.ts'), String(PORT), String(DIRECT_PORT)], { uid: SERVER_UID, gid: SERVER_UID })
      for (let i = 0; i < 100; i++) {
        const r = await b.exec(['curl', '-sS', '-m', '1', '-o', '/dev/null', '-w', '%{http_code}', `http://127.0.0.1:${DIRECT_PORT}/1k`], { timeoutMs: 5000 })
        if (r.stdout === '200') break
        if (!server.running || i === 99) throw new Error(`the server on node-b did not answer: ${server.output.slice(-2000)}`)
        await sleep(100)
      }

      const url = (path: Path): string => (path === 'mesh' ? `http://${VIP}/1k` : `http://${b.ipv4}:${DIRECT_PORT}/1k`)
      const uid = (path: Path): number => (path === 'mesh' ? CLIENT_UID : 0)
      const check = await a.mustExec(['curl', '-sS', '-m', '5', '-i', url('mesh')], { uid: CLIENT_UID, gid: CLIENT_UID })
      if (!check.startsWith('HTTP/1.1 200') || !check.endsWith(BODY.toString())) {
        await sleep(1000)
        throw new Error(`a request through the mesh got, not 200 with 1 KiB:\n${check.slice(0, 2000)}\n--- node-a\n${src.output.slice(-3000)}\n--- node-b\n${dst.output.slice(-3000)}\n--- server\n${server.output.slice(-2000)}`)
      }

      const wrk = async (path: Path, seconds: number): Promise<Wrk> => {
        const out = await a.mustExec(['wrk', '-t2', `-c${CONNS}`, `-d${seconds}s`, '--timeout', '5s', '-s', here('./wrk-report.lua'), url(path)], { uid: uid(path), gid: uid(path), timeoutMs: (seconds + 30) * 1000 })
        return JSON.parse(out.trim().split('\n').at(-1)!) as Wrk
      }
      let logs = 0
      // h2load paces each client at --rps and logs each request's start and duration; the
      // percentiles come from that log. A request is timed from when it is sent: one that
      // waited behind a slow one on its connection does not count its wait, so the count of
      // responses slower than the per-connection interval bounds that omission.
      const fixed = async (path: Path, seconds: number): Promise<Fixed> => {
        const log = join(logDir, `${path}-${logs++}.log`)
        const out = await a.mustExec(['h2load', '--h1', `-c${RATE_CLIENTS}`, `--rps=${RATE / RATE_CLIENTS}`, '-D', String(seconds), `--log-file=${log}`, url(path)], { uid: uid(path), gid: uid(path), timeoutMs: (seconds + 30) * 1000 })
        const req = /requests: (\d+) total, (\d+) started, (\d+) done, (\d+) succeeded, (\d+) failed/.exec(out)
        const codes = /status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/.exec(out)
        if (!req || !codes) throw new Error(`h2load output not understood:\n${out}`)
        const lines = (await readFile(log, 'utf8')).trim().split('\n').map((l) => l.split('\t').map(Number))
        await rm(log, { force: true })
        const ok = lines.filter((l) => l[1] === 200).map((l) => l[2]! / 1000)
        if (ok.length === 0) throw new Error(`h2load: no successful request to ${url(path)}:\n${out}`)
        const starts = lines.map((l) => l[0]!)
        const span = (Math.max(...starts) - Math.min(...starts)) / 1e6
        const interval = (1000 * RATE_CLIENTS) / RATE
        return {
          requests: ok.length, failed: Number(req[5]), non2xx: Number(codes[2]) + Number(codes[3]) + Number(codes[4]),
          seconds: span, rate: ok.length / span,
          p50ms: percentile(ok, 0.5), p90ms: percentile(ok, 0.9), p99ms: percentile(ok, 0.99), maxms: Math.max(...ok),
          overIntervalMs: ok.filter((ms) => ms > interval).length,
        }
      }
      const measured = async <T>(round: number, path: Path, f: () => Promise<T>): Promise<Run<T>> => {
        const c0 = { source: await cpuSeconds(pids.source), destination: await cpuSeconds(pids.destination) }
        const result = await f()
        const c1 = { source: await cpuSeconds(pids.source), destination: await cpuSeconds(pids.destination) }
        return { round, path, result, daemonCpuSeconds: { source: c1.source - c0.source, destination: c1.destination - c0.destination } }
      }

      // Warm-up: the HBONE session, the pools on both hosts, the JIT.
      for (const path of ['direct', 'mesh'] as const) { await wrk(path, 2); await fixed(path, 2) }
      const loads: Array<Run<Wrk>> = []
      const rates: Array<Run<Fixed>> = []
      for (let round = 0; round < ROUNDS; round++) {
        const order: Path[] = round % 2 === 0 ? ['direct', 'mesh'] : ['mesh', 'direct']
        for (const path of order) loads.push(await measured(round, path, () => wrk(path, SECONDS)))
        for (const path of order) rates.push(await measured(round, path, () => fixed(path, SECONDS)))
      }
      const rssAfter = { source: await rssMiB(pids.source), destination: await rssMiB(pids.destination) }
      const metric = async (h: TestHost, reporter: string): Promise<{ requests: number; ok: number }> => {
        const samples = parseMetrics(await h.mustExec(['curl', '-sS', '-m', '2', 'http://127.0.0.1:15000/metrics']))
        return { requests: total(samples, 'istio_requests_total', { reporter }), ok: total(samples, 'istio_requests_total', { reporter, response_code: '200' }) }
      }
      const metrics = { source: await metric(a, 'source'), destination: await metric(b, 'destination') }

      // Once more under the profiler: the load the table measured at 64 connections.
      await src.stop('SIGTERM', 20_000)
      await dst.stop('SIGTERM', 20_000)
      src = await start(a, ['--cpu-prof', `--cpu-prof-dir=${join(profDir, 'source')}`])
      dst = await start(b, ['--cpu-prof', `--cpu-prof-dir=${join(profDir, 'destination')}`])
      await wrk('mesh', 1)
      const profiledLoad = await wrk('mesh', PROFILE_SECONDS)
      const exits = { source: await src.stop('SIGTERM', 20_000), destination: await dst.stop('SIGTERM', 20_000) }
      const profile = async (who: keyof Cpu): Promise<ProfileSummary & { file: string }> => {
        const d = join(profDir, who)
        const f = readdirSync(d).find((n) => n.endsWith('.cpuprofile'))
        if (!f) throw new Error(`no .cpuprofile from the ${who} daemon (exit ${JSON.stringify(exits[who])})`)
        return { file: join(d, f), ...(await summariseFile(join(d, f), 15)) }
      }
      const profiles = { source: await profile('source'), destination: await profile('destination') }
      await server.stop()

      await report({ wrkV, h2loadV, nginxV, loads, rates, rssAtStart, rssAfter, metrics, profiledLoad, profiles })
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
    rmSync(io, { recursive: true, force: true })
  }
}

interface Outcome {
  wrkV: string; h2loadV: string; nginxV: string | undefined
  loads: Array<Run<Wrk>>; rates: Array<Run<Fixed>>
  rssAtStart: Cpu; rssAfter: Cpu
  metrics: Record<keyof Cpu, { requests: number; ok: number }>
  profiledLoad: Wrk
  profiles: Record<keyof Cpu, ProfileSummary & { file: string }>
}

async function report(o: Outcome): Promise<void> {
  const rate = (r: Wrk): number => r.requests / r.seconds
  const of = <T>(runs: Array<Run<T>>, path: Path): Array<Run<T>> => runs.filter((r) => r.path === path)
  const perK = <T>(runs: Array<Run<T>>, n: (t: T) => number, who: keyof Cpu): number => median(runs.map((r) => (r.daemonCpuSeconds[who] / n(r.result)) * 1000))
  const f2 = (x: number): string => x.toFixed(2)
  const tp = (['direct', 'mesh'] as const).map((path) => {
    const rs = of(o.loads, path)
    const rates = rs.map((r) => rate(r.result))
    return { path, median: median(rates), min: Math.min(...rates), max: Math.max(...rates), rates: rates.map(Math.round), p50ms: median(rs.map((r) => r.result.p50ms)), p99ms: median(rs.map((r) => r.result.p99ms)), errors: rs.reduce((s, r) => s + r.result.errors + r.result.non2xx, 0) }
  })
  const lat = (['direct', 'mesh'] as const).map((path) => {
    const rs = of(o.rates, path).map((r) => r.result)
    const m = (f: (x: Fixed) => number): number => median(rs.map(f))
    return { path, rate: m((x) => x.rate), p50ms: m((x) => x.p50ms), p90ms: m((x) => x.p90ms), p99ms: m((x) => x.p99ms), maxms: Math.max(...rs.map((x) => x.maxms)), overIntervalMs: rs.reduce((s, x) => s + x.overIntervalMs, 0), failed: rs.reduce((s, x) => s + x.failed + x.non2xx, 0), perRound: rs.map((x) => ({ p50ms: x.p50ms, p90ms: x.p90ms, p99ms: x.p99ms })) }
  })
  const cpu = (['source', 'destination'] as const).map((who) => ({
    who,
    saturated: perK(of(o.loads, 'mesh'), (r) => r.requests, who),
    fixed: perK(of(o.rates, 'mesh'), (r) => r.requests, who),
    idleDuringDirect: median(of(o.loads, 'direct').map((r) => r.daemonCpuSeconds[who])),
    rssStart: o.rssAtStart[who], rssAfter: o.rssAfter[who],
  }))
  const [d, m] = [tp[0]!, tp[1]!]
  const [ld, lm] = [lat[0]!, lat[1]!]
  const cpuModel = cpus()[0]?.model ?? 'cpu'
  const machine = `${cpuModel}, ${cpus().length} cores, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`
  const server = o.nginxV ? o.nginxV.replace(/^nginx version: /, '') : 'scripts/bench/http-mesh-server.ts (node:http)'

  console.log(`machine: ${machine}; server: ${server}, 1 KiB responses; ${o.wrkV.split(' ').slice(0, 2).join(' ')}, ${o.h2loadV}\n`)
  console.log(`req/s at ${CONNS} keep-alive connections (wrk -t2 -c${CONNS} -d${SECONDS}s), ${ROUNDS} rounds interleaved:\n`)
  console.log('| path | req/s (median of 3) | min | max | p50 ms | p99 ms | errors |')
  console.log('|---|---|---|---|---|---|---|')
  for (const r of tp) console.log(`| ${r.path} | ${r.median.toFixed(0)} | ${r.min.toFixed(0)} | ${r.max.toFixed(0)} | ${f2(r.p50ms)} | ${f2(r.p99ms)} | ${r.errors} |`)
  console.log(`\nmesh/direct req/s: ${(m.median / d.median).toFixed(3)}\n`)
  console.log(`latency at a fixed ${RATE} req/s (h2load --h1 -c${RATE_CLIENTS} --rps=${RATE / RATE_CLIENTS} -D ${SECONDS}), medians of ${ROUNDS} rounds:\n`)
  console.log(`| path | req/s | p50 ms | p90 ms | p99 ms | max ms | > ${(1000 * RATE_CLIENTS) / RATE} ms | failed |`)
  console.log('|---|---|---|---|---|---|---|---|')
  for (const r of lat) console.log(`| ${r.path} | ${r.rate.toFixed(0)} | ${f2(r.p50ms)} | ${f2(r.p90ms)} | ${f2(r.p99ms)} | ${f2(r.maxms)} | ${r.overIntervalMs} | ${r.failed} |`)
  console.log(`| added by the mesh | | ${f2(lm.p50ms - ld.p50ms)} | ${f2(lm.p90ms - ld.p90ms)} | ${f2(lm.p99ms - ld.p99ms)} | | | |`)
  console.log(`\nmesh/direct latency: p50 ${(lm.p50ms / ld.p50ms).toFixed(2)}x, p90 ${(lm.p90ms / ld.p90ms).toFixed(2)}x, p99 ${(lm.p99ms / ld.p99ms).toFixed(2)}x\n`)
  console.log('| daemon | CPU s per 1,000 requests, 64 connections | at 1,000 req/s | RSS MiB at start | RSS MiB after the runs |')
  console.log('|---|---|---|---|---|')
  for (const c of cpu) console.log(`| ${c.who} (${c.who === 'source' ? 'node-a' : 'node-b'}) | ${c.saturated.toFixed(3)} | ${c.fixed.toFixed(3)} | ${c.rssStart} | ${c.rssAfter} |`)
  console.log(`\nrequests counted by the daemons (istio_requests_total): source ${o.metrics.source.requests} (${o.metrics.source.ok} 200), destination ${o.metrics.destination.requests} (${o.metrics.destination.ok} 200)`)
  console.log(`\nprofiled run: mesh, wrk ${PROFILE_SECONDS} s at ${CONNS} connections, ${rate(o.profiledLoad).toFixed(0)} req/s`)
  for (const who of ['source', 'destination'] as const) {
    const p = o.profiles[who]
    console.log(`\n${who} daemon: busy ${p.busyMs} ms of ${p.wallMs} ms (sample interval ${p.intervalUs} µs); ${p.file}\n`)
    console.log('| function (self time) | ms | of busy |\n|---|---|---|')
    for (const r of p.functions) console.log(`| ${r.name} | ${r.ms} | ${(r.share * 100).toFixed(1)}% |`)
    console.log('\n| file (self time) | ms | of busy |\n|---|---|---|')
    for (const r of p.files.slice(0, 10)) console.log(`| ${r.name} | ${r.ms} | ${(r.share * 100).toFixed(1)}% |`)
  }

  const at = new Date().toISOString()
  const raw = {
    bench: 'http-mesh', at, machine: { cpu: cpuModel, cores: cpus().length, memGiB: Math.round(totalmem() / 2 ** 30), node: process.version },
    tools: { wrk: o.wrkV, h2load: o.h2loadV, server },
    params: { connections: CONNS, seconds: SECONDS, rounds: ROUNDS, rate: RATE, rateClients: RATE_CLIENTS, responseBytes: BODY.length, profileSeconds: PROFILE_SECONDS, daemonLogLevel: 'warn' },
    loads: o.loads, rates: o.rates, summary: { throughput: tp, latency: lat, ratio: { reqPerSec: m.median / d.median, p50: lm.p50ms / ld.p50ms, p90: lm.p90ms / ld.p90ms, p99: lm.p99ms / ld.p99ms }, cpu },
    metrics: o.metrics, profiledLoad: o.profiledLoad, profiles: o.profiles,
  }
  const out = here('./results/')
  await mkdir(out, { recursive: true })
  const file = `${out}http-mesh-${at.slice(0, 19).replace(/:/g, '-')}Z.json`
  await writeFile(file, `${JSON.stringify(raw, null, 2)}\n`)
  console.log(`\nraw: ${file}`)
}

if (import.meta.main) {
  await benchHttpMesh()
  console.log(`\nmachine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`)
}
