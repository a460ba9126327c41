// Upstream HTTP client for the L7 proxy, by measurement (issue #12): undici (Pool, dispatch
// API), node:http with a keep-alive Agent, and http-proxy-3 (on that same Agent), each behind
// the same node:http proxy front, over TCP and over HTTP/2 CONNECT streams (hostmesh's
// upstream connections). Load comes from another process (wrk, else http-load.ts): 64
// connections, 5 s, 3 rounds interleaved, with the origin reached directly as the baseline;
// req/s, p50/p99 and the proxy process's CPU time per request. Then a client-abort leak test
// per client (and for undici and node:http without the early-close handler, "naive"): 2,000
// requests each closed by the downstream client mid-response, and the connections and tunnels
// still open at the origin 2 s later.
// Run: `node scripts/bench/http-clients.ts` or `npm run bench -- http-clients`. Loopback only;
// raw results go to scripts/bench/results/.
import { execFile, spawn, type ChildProcess } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import http from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { promisify } from 'node:util'
import { machineLine, writeResults } from './results.ts'
import { startOrigin, type Origin } from './http-origin.ts'
import { median } from './stats.ts'

const run = promisify(execFile)
const here = (f: string): string => new URL(f, import.meta.url).pathname

const CONNS = 64
const SECONDS = 5
const ROUNDS = 3
const ABORTS = 2000
const ABORT_CONCURRENCY = 50
const SETTLE_MS = 2000
const CLIENTS = ['undici', 'node-http', 'http-proxy-3'] as const
const TRANSPORTS = ['tcp', 'connect'] as const

interface Load { requests: number; seconds: number; errors: number; non2xx: number; p50ms: number; p99ms: number }
interface Config { name: string; client: string; transport: string; naive?: boolean }
interface Leak { config: string; aborted: number; failed: number; seconds: number; originSockets: number; tunnelStreams: number }

const configs: Config[] = CLIENTS.flatMap((client) => TRANSPORTS.map((transport) => ({ name: `${client} / ${transport}`, client, transport })))

async function loader(): Promise<{ name: string; load: (port: number, seconds: number) => Promise<Load> }> {
  const wrk = await run('wrk', ['-v']).then((r) => r.stdout, (e: { code?: unknown; stdout?: string }) => (e.code === 'ENOENT' ? undefined : e.stdout ?? ''))
  if (wrk !== undefined) {
    return {
      name: (/wrk \S+/.exec(wrk)?.[0] ?? 'wrk'),
      load: async (port, seconds) => {
        const { stdout } = await run('wrk', ['-t1', `-c${CONNS}`, `-d${seconds}s`, '--timeout', '5s', '-s', here('./wrk-report.lua'), `http://127.0.0.1:${port}/`], { timeout: (seconds + 30) * 1000 })
        return JSON.parse(stdout.trim().split('\n').at(-1)!) as Load
      },
    }
  }
  return {
    name: 'scripts/bench/http-load.ts',
    load: async (port, seconds) => {
      const { stdout } = await run(process.execPath, [here('./http-load.ts'), `http://127.0.0.1:${port}/`, String(CONNS), String(seconds)], { timeout: (seconds + 30) * 1000 })
      return JSON.parse(stdout) as Load
    },
  }
}

interface Proxy { port: number; cpuUs: () => Promise<number>; stop: () => Promise<void> }

async function startProxy(origin: Origin, c: Config): Promise<Proxy> {
  const child: ChildProcess = spawn(process.execPath, [here('./http-clients-proxy.ts'), c.client, c.transport, String(origin.port), String(origin.tunnelPort), ...(c.naive ? ['naive'] : [])], { stdio: ['ignore', 'pipe', 'inherit', 'ipc'] })
  const port = await new Promise<number>((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`${c.name}: not ready in 10 s`)), 10_000)
    let out = ''
    child.stdout!.on('data', (d: Buffer) => {
      out += String(d)
      const m = /ready (\d+)/.exec(out)
      if (m) { clearTimeout(timer); resolve(Number(m[1])) }
    })
    child.once('exit', (code) => { clearTimeout(timer); reject(new Error(`${c.name}: exited ${code}`)) })
  })
  return {
    port,
    cpuUs: () => new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`${c.name}: no CPU usage in 5 s`)), 5000)
      child.once('message', (u) => { clearTimeout(timer); const { user, system } = u as NodeJS.CpuUsage; resolve(user + system) })
      child.send('cpu')
    }),
    stop: async () => {
      if (child.exitCode !== null) return
      const exited = new Promise((r) => child.once('exit', r))
      child.kill('SIGTERM')
      await exited
    },
  }
}

/** GET /slow, and close the connection as soon as the first body bytes arrive; false if none came. */
function abortOne(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const req = http.get({ host: '127.0.0.1', port, path: '/slow', agent: false }, (res) => {
      res.once('data', () => { req.destroy(); resolve(true) })
      res.on('error', () => undefined)
    })
    req.setTimeout(10_000, () => req.destroy())
    req.on('error', () => undefined)
    // An error answer (502) has no body: 'close' settles it, and a settled promise ignores it.
    req.once('close', () => resolve(false))
  })
}

async function leakTest(origin: Origin, c: Config): Promise<Leak> {
  // The previous proxy's connections close when it exits; wait for that (bounded).
  for (let i = 0; i < 100 && origin.sockets() + origin.streams() > 0; i++) await sleep(50)
  const proxy = await startProxy(origin, c)
  let started = 0
  let aborted = 0
  const deadline = Date.now() + 60_000
  const t0 = performance.now()
  await Promise.all(Array.from({ length: ABORT_CONCURRENCY }, async () => {
    while (started < ABORTS && Date.now() < deadline) {
      started++
      if (await abortOne(proxy.port)) aborted++
    }
  }))
  const seconds = (performance.now() - t0) / 1000
  await sleep(SETTLE_MS)
  const leak = { config: c.name, aborted, failed: started - aborted, seconds, originSockets: origin.sockets(), tunnelStreams: origin.streams() }
  await proxy.stop()
  return leak
}

export async function benchHttpClients(): Promise<void> {
  const origin = await startOrigin()
  const { name: loaderName, load } = await loader()
  const proxies = new Map<string, Proxy>()
  try {
    for (const c of configs) proxies.set(c.name, await startProxy(origin, c))
    const targets: Array<{ name: string; port: number; proxy?: Proxy }> = [
      { name: 'direct to the origin (baseline)', port: origin.port },
      ...configs.map((c) => ({ name: c.name, port: proxies.get(c.name)!.port, proxy: proxies.get(c.name)! })),
    ]
    for (const t of targets) await load(t.port, 1) // warm-up: JIT, pools
    const runs: Array<Load & { round: number; target: string; rate: number; proxyCpuUsPerRequest: number | null }> = []
    for (let round = 0; round < ROUNDS; round++) {
      // A different order each round, so no target always follows the same neighbour.
      const order = targets.map((_, i) => targets[(i + round * 2) % targets.length]!)
      for (const t of order) {
        const cpu0 = await t.proxy?.cpuUs()
        const r = await load(t.port, SECONDS)
        const cpu1 = await t.proxy?.cpuUs()
        const proxyCpuUsPerRequest = cpu0 === undefined || cpu1 === undefined ? null : (cpu1 - cpu0) / r.requests
        runs.push({ round, target: t.name, ...r, rate: r.requests / r.seconds, proxyCpuUsPerRequest })
      }
    }
    for (const p of proxies.values()) await p.stop()
    proxies.clear()

    const leaks: Leak[] = []
    const leakConfigs: Config[] = [...configs, ...(['undici', 'node-http'] as const).flatMap((client) => TRANSPORTS.map((transport) => ({ name: `${client} / ${transport}, naive`, client, transport, naive: true })))]
    for (const c of leakConfigs) leaks.push(await leakTest(origin, c))

    const direct = median(runs.filter((r) => r.target === targets[0]!.name).map((r) => r.rate))
    const summary = targets.map((t) => {
      const rs = runs.filter((r) => r.target === t.name)
      const cpu = rs.flatMap((r) => (r.proxyCpuUsPerRequest === null ? [] : [r.proxyCpuUsPerRequest]))
      return { target: t.name, rate: median(rs.map((r) => r.rate)), p50ms: median(rs.map((r) => r.p50ms)), p99ms: median(rs.map((r) => r.p99ms)), errors: rs.reduce((a, r) => a + r.errors + r.non2xx, 0), rates: rs.map((r) => Math.round(r.rate)), proxyCpuUsPerRequest: cpu.length ? median(cpu) : null }
    })
    console.log(`load: ${loaderName}, ${CONNS} connections, ${SECONDS} s x ${ROUNDS} rounds interleaved, 1 KiB responses\n`)
    console.log('| client / upstream transport | req/s (median of 3) | per run | of direct | p50 ms | p99 ms (median) | proxy CPU µs/req | errors |')
    console.log('|---|---|---|---|---|---|---|---|')
    for (const s of summary) console.log(`| ${s.target} | ${s.rate.toFixed(0)} | ${s.rates.join(', ')} | ${(s.rate / direct).toFixed(3)} | ${s.p50ms.toFixed(2)} | ${s.p99ms.toFixed(2)} | ${s.proxyCpuUsPerRequest?.toFixed(0) ?? '—'} | ${s.errors} |`)
    console.log(`\nclient abort: ${ABORTS} GET /slow per client, ${ABORT_CONCURRENCY} at a time, each closed after its first body bytes; open at the origin ${SETTLE_MS / 1000} s later\n`)
    console.log('| client / upstream transport | aborted | failed | upstream connections open | CONNECT streams open |')
    console.log('|---|---|---|---|---|')
    for (const l of leaks) console.log(`| ${l.config} | ${l.aborted} | ${l.failed} | ${l.originSockets} | ${l.tunnelStreams} |`)

    const version = async (pkg: string): Promise<string> => (JSON.parse(await readFile(here(`../../node_modules/${pkg}/package.json`), 'utf8')) as { version: string }).version
    const machine = machineLine()
    const at = new Date().toISOString()
    const raw = {
      bench: 'http-clients', at, machine, loader: loaderName,
      versions: { undici: await version('undici'), 'http-proxy-3': await version('http-proxy-3') },
      params: { connections: CONNS, seconds: SECONDS, rounds: ROUNDS, responseBytes: 1024, aborts: ABORTS, abortConcurrency: ABORT_CONCURRENCY, settleMs: SETTLE_MS },
      runs, summary, leaks,
    }
    const file = await writeResults('http-clients', raw, at)
    console.log(`\nraw: ${file}`)
  } finally {
    for (const p of proxies.values()) await p.stop()
    await origin.close()
  }
}

if (import.meta.main) {
  await benchHttpClients()
  console.log(`\nmachine: ${machineLine()}`)
}
