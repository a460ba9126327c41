// Where one daemon's memory goes (issue #14), measured on `hostmesh run` as installed: the
// compiled dist/ (built here into a scratch directory; the TypeScript sources cost ~30 MB more
// RSS through type stripping) with the Environment= of systemd/hostmesh.service (NODE_OPTIONS,
// MALLOC_ARENA_MAX), against Node's defaults. Loopback only, no root, iptables sync off.
// Phases, per daemon started afresh:
//   1. idle with the example policy (node-c, two local identities), 3 s after /ready;
//   2. a policy whose local workload serves HTTP (node:http in this process, 1 KiB answers):
//      idle; 1,000 req/s for --rate-seconds over 16 HBONE tunnels from memory-client.ts (the
//      daemon's inbound L7 path); as fast as 64 tunnels go for --peak-seconds; 15 s later.
// Each phase: RSS (/proc: at its end and the most seen while it ran, sampled every 100 ms;
// anon and file-backed), the V8 heap from the daemon's own /metrics (used, total, new space,
// external), and for the loads the daemon's CPU and GC time per 1,000 requests (/proc and
// nodejs_gc_duration_seconds) and the client's latency. Variants are interleaved per round.
// Options (after the name: `npm run bench -- memory --rounds 3`):
//   --rounds N          (default 3)
//   --rate-seconds N    (default 10)
//   --peak-seconds N    (default 5)
//   --semi A,B,...      also variants with NODE_OPTIONS=--max-semi-space-size=A (MiB), the
//                       unit's other settings kept
//   --env K=V[;K=V...]  also a variant with these variables over the unit's (repeatable), e.g.
//                       --env 'NODE_OPTIONS=--max-semi-space-size=8;MALLOC_MMAP_THRESHOLD_=131072'
//   --source            also the unit's settings with daemon/cli.ts (type stripping) instead of dist/
//   --workers A,B,...   also the unit's settings with `workers: A` (the others run the default,
//                       auto: one per CPU); the load arrives on one HBONE session, so one thread
//                       carries it and the others show what an idle worker thread costs
//   --cli FILE          measure this built entry (another checkout's dist/daemon/cli.js) instead
//                       of building this one, e.g. to compare with an earlier commit
import { spawn, type ChildProcess } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseArgs } from 'node:util'
import { initRootCa, makeNodeCa } from '../../certs/ca-ops.ts'
import { parseMetrics, total } from '../demo/telemetry.ts'
import { buildDist, unitEnvironment, withoutUnitEnvironment } from './installed.ts'
import { machineLine, writeResults } from './results.ts'
import { median } from './stats.ts'

const here = (f: string): string => new URL(f, import.meta.url).pathname
const ROOT = here('../../')
const MB = 2 ** 20
const AFTER_MS = 15_000
const V = 'apiVersion: hostmesh.io/v1alpha1\n'

interface Variant {
  readonly name: string
  readonly cli: string
  readonly env: NodeJS.ProcessEnv
  /** The node config's `workers`; absent: the default (auto). */
  readonly workers?: number
}

interface Memory {
  rss: number; anon: number; file: number
  heapUsed: number; heapTotal: number; newSpace: number; external: number
}

interface Load {
  requests: number; rate: number; p50ms: number; p99ms: number
  maxRss: number; end: Memory
  cpuMsPer1k: number; gcMsPer1k: number; scavengesPer1k: number
}

interface Round {
  variant: string
  example: Memory
  idle: Memory
  rate: Load
  peak: Load
  after: Memory
}

function procStatus(pid: number): { rss: number; anon: number; file: number } {
  const s = readFileSync(`/proc/${pid}/status`, 'utf8')
  const kb = (k: string): number => Number(new RegExp(`^${k}:\\s+(\\d+)`, 'm').exec(s)?.[1] ?? 0) / 1024
  return { rss: kb('VmRSS'), anon: kb('RssAnon'), file: kb('RssFile') }
}

function cpuSeconds(pid: number): number {
  const f = readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1]!.split(' ')
  return (Number(f[11]) + Number(f[12])) / 100
}

class Daemon {
  readonly child: ChildProcess
  readonly admin: number
  constructor(v: Variant, config: string, admin: number) {
    this.admin = admin
    this.child = spawn(process.execPath, [v.cli, 'run', '--config', config], { stdio: ['ignore', 'ignore', 'inherit'], env: v.env })
  }

  get pid(): number { return this.child.pid! }

  async ready(): Promise<void> {
    const t0 = Date.now()
    while (!(await fetch(`http://127.0.0.1:${this.admin}/ready`).then((r) => r.status === 200, () => false))) {
      if (Date.now() - t0 > 30_000 || this.child.exitCode !== null) throw new Error('the daemon did not get ready')
      await sleep(20)
    }
  }

  async metrics(): Promise<ReturnType<typeof parseMetrics>> {
    return parseMetrics(await (await fetch(`http://127.0.0.1:${this.admin}/metrics`)).text())
  }

  async memory(): Promise<Memory> {
    const m = await this.metrics()
    return {
      ...procStatus(this.pid),
      heapUsed: total(m, 'nodejs_heap_size_used_bytes') / MB,
      heapTotal: total(m, 'nodejs_heap_size_total_bytes') / MB,
      newSpace: total(m, 'nodejs_heap_space_size_total_bytes', { space: 'new' }) / MB,
      external: total(m, 'nodejs_external_memory_bytes') / MB,
    }
  }

  async stop(): Promise<void> {
    this.child.kill('SIGTERM')
    if (this.child.exitCode === null) await new Promise((r) => this.child.once('exit', r))
  }
}

async function load(d: Daemon, certDir: string, hbone: number, workload: number, args: string[]): Promise<Load> {
  const gc = async (): Promise<{ ms: number; minor: number }> => {
    const m = await d.metrics()
    return { ms: total(m, 'nodejs_gc_duration_seconds_sum') * 1000, minor: total(m, 'nodejs_gc_duration_seconds_count', { kind: 'minor' }) }
  }
  let maxRss = 0
  const poll = setInterval(() => { maxRss = Math.max(maxRss, procStatus(d.pid).rss) }, 100)
  const gc0 = await gc()
  const cpu0 = cpuSeconds(d.pid)
  const client = spawn(process.execPath, [here('./memory-client.ts'), certDir, String(hbone), String(workload), ...args], { stdio: ['ignore', 'pipe', 'inherit'], env: withoutUnitEnvironment() })
  let out = ''
  client.stdout!.on('data', (b: Buffer) => { out += b.toString() })
  const code = await new Promise<number | null>((r) => client.once('exit', r))
  const cpu = cpuSeconds(d.pid) - cpu0
  const gc1 = await gc()
  clearInterval(poll)
  if (code !== 0) throw new Error(`memory-client exited with ${code}`)
  const r = JSON.parse(out.trim()) as { requests: number; non200: number; rate: number; p50ms: number; p99ms: number }
  if (r.non200 > 0) throw new Error(`${r.non200} answers were not 200`)
  const per1k = (x: number): number => (x / r.requests) * 1000
  return {
    requests: r.requests, rate: r.rate, p50ms: r.p50ms, p99ms: r.p99ms, maxRss: Math.max(maxRss, procStatus(d.pid).rss), end: await d.memory(),
    cpuMsPer1k: per1k(cpu * 1000), gcMsPer1k: per1k(gc1.ms - gc0.ms), scavengesPer1k: per1k(gc1.minor - gc0.minor),
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as AddressInfo
      s.close(() => resolve(port))
    })
  })
}

async function config(dir: string, name: string, node: string, address: string, policyDir: string, certDir: string, workers?: number): Promise<{ path: string; admin: number; hbone: number }> {
  const [admin, hbone, inbound] = [await freePort(), await freePort(), await freePort()]
  const path = join(dir, `${name}.yaml`)
  writeFileSync(path, `node: {name: ${node}, addresses: [${address}]}\nports: {admin: ${admin}, outboundBase: ${40_000 + Math.floor(Math.random() * 20_000)}, inboundPlaintext: ${inbound}, hbone: ${hbone}}\n` +
    `admin: {socket: ${join(dir, `${name}.sock`)}}\npolicyDir: ${policyDir}\ncertDir: ${certDir}\nlogLevel: warn\niptables: {sync: false}\n${workers === undefined ? '' : `workers: ${workers}\n`}`)
  return { path, admin, hbone }
}

export async function benchMemory(argv: readonly string[] = []): Promise<void> {
  const { values } = parseArgs({ args: [...argv], options: { rounds: { type: 'string' }, 'rate-seconds': { type: 'string' }, 'peak-seconds': { type: 'string' }, semi: { type: 'string' }, env: { type: 'string', multiple: true }, source: { type: 'boolean' }, cli: { type: 'string' }, workers: { type: 'string' } } })
  const rounds = Number(values.rounds ?? 3)
  const rateSeconds = values['rate-seconds'] ?? '10'
  const peakSeconds = values['peak-seconds'] ?? '5'
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-bench-memory-'))
  const origin: Server = createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': 1024 }).end(Buffer.alloc(1024, 'x'))
  })
  try {
    const cli = values.cli ?? await buildDist(join(dir, 'pkg'))
    const unit = unitEnvironment()
    const variants: Variant[] = [
      { name: 'Node defaults', cli, env: withoutUnitEnvironment() },
      { name: `hostmesh.service (${Object.entries(unit).map(([k, v]) => `${k}=${v}`).join(' ')})`, cli, env: { ...withoutUnitEnvironment(), ...unit } },
    ]
    for (const mib of (values.semi ?? '').split(',').filter(Boolean)) {
      variants.push({ name: `--max-semi-space-size=${mib}, MALLOC_ARENA_MAX=${unit.MALLOC_ARENA_MAX ?? '(unset)'}`, cli, env: { ...withoutUnitEnvironment(), ...unit, NODE_OPTIONS: `--max-semi-space-size=${mib}` } })
    }
    for (const spec of values.env ?? []) {
      const extra = Object.fromEntries(spec.split(';').map((kv) => [kv.slice(0, kv.indexOf('=')), kv.slice(kv.indexOf('=') + 1)]))
      variants.push({ name: `hostmesh.service + ${spec.replaceAll(';', ' ')}`, cli, env: { ...withoutUnitEnvironment(), ...unit, ...extra } })
    }
    for (const n of (values.workers ?? '').split(',').filter(Boolean).map(Number)) {
      if (!Number.isInteger(n) || n < 1) throw new Error(`--workers takes whole numbers ≥ 1, not "${values.workers}"`)
      variants.push({ name: `hostmesh.service, workers: ${n}`, cli, env: { ...withoutUnitEnvironment(), ...unit }, workers: n })
    }
    if (values.source) variants.push({ name: 'hostmesh.service, from the TypeScript sources', cli: join(ROOT, 'daemon/cli.ts'), env: { ...withoutUnitEnvironment(), ...unit } })

    // The example policy on node-c, as the daemon-start bench runs it.
    await initRootCa({ dir: join(dir, 'root'), trustDomain: 'cluster.local' })
    await makeNodeCa({ caDir: join(dir, 'root'), node: 'node-c', outDir: join(dir, 'certs-c') })
    await makeNodeCa({ caDir: join(dir, 'root'), node: 'node-a', outDir: join(dir, 'certs-a') })
    cpSync(join(ROOT, 'policy/examples'), join(dir, 'policy-example'), { recursive: true })
    await new Promise<void>((r) => origin.listen(0, '127.0.0.1', r))
    const workload = (origin.address() as AddressInfo).port
    mkdirSync(join(dir, 'policy-load'))
    writeFileSync(join(dir, 'policy-load/load.yaml'), [
      `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n`,
      `${V}kind: Workload\nmetadata: {name: server, namespace: bench, labels: {app: server}}\nspec: {node: node-a, serviceAccount: server, match: {uid: 5001}, addresses: [127.0.0.1], ports: [{name: http, port: ${workload}}]}\n`,
      `${V}kind: Workload\nmetadata: {name: client, namespace: bench}\nspec: {node: node-a, serviceAccount: client, match: {uid: 5002}}\n`,
      `${V}kind: Service\nmetadata: {name: server, namespace: bench}\nspec: {addresses: [10.96.0.99], ports: [{name: http, port: 80, protocol: http, targetPort: ${workload}}], selector: {app: server}}\n`,
    ].join('---\n'))

    const results: Round[] = []
    for (let round = 0; round < rounds; round++) {
      for (const v of variants) {
        const ex = await config(dir, `example-${round}`, 'node-c', '10.77.0.13', join(dir, 'policy-example'), join(dir, 'certs-c'), v.workers)
        let d = new Daemon(v, ex.path, ex.admin)
        await d.ready()
        await sleep(3000)
        const example = await d.memory()
        await d.stop()
        const lc = await config(dir, `load-${round}`, 'node-a', '127.0.0.1', join(dir, 'policy-load'), join(dir, 'certs-a'), v.workers)
        d = new Daemon(v, lc.path, lc.admin)
        try {
          await d.ready()
          await sleep(3000)
          const idle = await d.memory()
          const rate = await load(d, join(dir, 'certs-a'), lc.hbone, workload, ['rate', '1000', rateSeconds, '16'])
          const peak = await load(d, join(dir, 'certs-a'), lc.hbone, workload, ['peak', '0', peakSeconds, '64'])
          await sleep(AFTER_MS)
          const after = await d.memory()
          results.push({ variant: v.name, example, idle, rate, peak, after })
          process.stderr.write(`round ${round + 1}/${rounds}: ${v.name}: idle ${example.rss.toFixed(0)} MiB, 1k req/s ${rate.maxRss.toFixed(0)} MiB, peak ${peak.rate.toFixed(0)} req/s ${peak.maxRss.toFixed(0)} MiB\n`)
        } finally {
          await d.stop()
        }
      }
    }
    report(variants, results)
    const out = await writeResults('memory', { machine: machineLine(), rounds, rateSeconds, peakSeconds, variants: variants.map((v) => ({ name: v.name, cli: v.cli.replace(dir, '<scratch>'), nodeOptions: v.env.NODE_OPTIONS ?? null, mallocArenaMax: v.env.MALLOC_ARENA_MAX ?? null })), results })
    console.log(`\nraw: ${out.replace(ROOT, '')}`)
  } finally {
    origin.close()
    rmSync(dir, { recursive: true, force: true })
  }
}


function report(variants: readonly Variant[], results: readonly Round[]): void {
  const f = (xs: number[], digits = 0): string => median(xs).toFixed(digits)
  const range = (xs: number[]): string => `${f(xs)} (${Math.min(...xs).toFixed(0)}–${Math.max(...xs).toFixed(0)})`
  console.log('**RSS in MiB** (median of rounds, min–max; heap is V8 used / total, new space its young generation)\n')
  console.log('| variant | idle, example policy: RSS (anon + file), heap | at 1,000 req/s: most RSS, at its end, heap, new space | at peak: most RSS, heap, new space | 15 s later |')
  console.log('|---|---|---|---|---|')
  for (const v of variants) {
    const rs = results.filter((r) => r.variant === v.name)
    if (rs.length === 0) continue
    const col = (get: (r: Round) => Load, end = false): string => `${range(rs.map((r) => get(r).maxRss))}, ${end ? `${f(rs.map((r) => get(r).end.rss))}, ` : ''}${f(rs.map((r) => get(r).end.heapUsed))} / ${f(rs.map((r) => get(r).end.heapTotal))}, ${f(rs.map((r) => get(r).end.newSpace))}`
    console.log(`| ${v.name} | ${range(rs.map((r) => r.example.rss))} (${f(rs.map((r) => r.example.anon))} + ${f(rs.map((r) => r.example.file))}), ${f(rs.map((r) => r.example.heapUsed))} / ${f(rs.map((r) => r.example.heapTotal))} | ${col((r) => r.rate, true)} | ${col((r) => r.peak)} | ${range(rs.map((r) => r.after.rss))} |`)
  }
  console.log('\n**What it cost** (the daemon\'s CPU and GC pauses per 1,000 requests; client latency at 1,000 req/s)\n')
  console.log('| variant | 1k req/s: CPU ms / 1k | GC ms / 1k (scavenges) | p50 / p99 ms | peak req/s | peak: CPU ms / 1k | GC ms / 1k (scavenges) |')
  console.log('|---|---|---|---|---|---|---|')
  for (const v of variants) {
    const rs = results.filter((r) => r.variant === v.name)
    if (rs.length === 0) continue
    const g = (get: (r: Round) => number, digits = 1): string => f(rs.map(get), digits)
    console.log(`| ${v.name} | ${g((r) => r.rate.cpuMsPer1k, 0)} | ${g((r) => r.rate.gcMsPer1k)} (${g((r) => r.rate.scavengesPer1k)}) | ${g((r) => r.rate.p50ms, 2)} / ${g((r) => r.rate.p99ms, 2)} | ${range(rs.map((r) => r.peak.rate))} | ${g((r) => r.peak.cpuMsPer1k, 0)} | ${g((r) => r.peak.gcMsPer1k)} (${g((r) => r.peak.scavengesPer1k)}) |`)
  }
  console.log(`\nmachine: ${machineLine()}`)
}

if (import.meta.url === `file://${process.argv[1]}`) await benchMemory(process.argv.slice(2))
