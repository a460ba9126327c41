// `npm run bench -- relay` (issue #14, cost per byte): Node's own TLS + HTTP/2 relay on
// loopback, without hostmesh (scripts/bench/relay-proxy.ts), so the L4 bulk figures of `peer`
// can be read against what the runtime alone does with the same HTTP/2 settings, and so each
// knob that might move the cost per byte is measured in one run: forced young-generation
// collections (young-16 is what daemon/tunnel/relay-gc.ts does), smaller flow-control windows, V8 flags, the size of the live heap. No root.
// Each round sends --gib GiB through client relay → TLS/HTTP/2 → server relay → a sink, once
// per variant, variants interleaved; per variant the median of the rounds.
// Options: --rounds N (default 3), --gib N (default 2), --only NAME,NAME.
import { execFile, fork, type ChildProcess } from 'node:child_process'
import { mkdtempSync, rmSync } from 'node:fs'
import net from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs, promisify } from 'node:util'
import { machineLine, writeResults } from './results.ts'
import { sourceState } from './source-state.ts'
import { median } from './stats.ts'

const here = (f: string): string => new URL(f, import.meta.url).pathname

interface Variant { name: string; args: string[]; node: string[] }
interface Report { cpuSeconds: number; major: number; minor: number; forced: number; heapMiB: number }
interface Run { variant: string; gbits: number; client: Report; server: Report }

const RETAIN = ['--retain', '20']
const VARIANTS: Variant[] = [
  { name: 'node', args: RETAIN, node: [] },
  { name: 'no-live-heap', args: ['--retain', '0'], node: [] },
  { name: 'semi-16', args: RETAIN, node: ['--max-semi-space-size=16'] },
  { name: 'young-16', args: [...RETAIN, '--young', '16'], node: [] },
  { name: 'young-socket-16', args: [...RETAIN, '--young', '16', '--young-from', 'socket'], node: [] },
  { name: 'young-both-16', args: [...RETAIN, '--young', '16', '--young-from', 'both'], node: [] },
  { name: 'young-socket-drained-16', args: [...RETAIN, '--young', '16', '--young-from', 'socket-drained'], node: [] },
  { name: 'young-both-drained-16', args: [...RETAIN, '--young', '16', '--young-from', 'both-drained'], node: [] },
  { name: 'worker', args: [...RETAIN, '--in-worker'], node: [] },
  { name: 'worker-young-16', args: [...RETAIN, '--young', '16', '--in-worker'], node: [] },
  { name: 'worker-young-both-drained-16', args: [...RETAIN, '--young', '16', '--young-from', 'both-drained', '--in-worker'], node: [] },
  { name: 'young-64', args: [...RETAIN, '--young', '64'], node: [] },
  { name: 'windows-1m', args: [...RETAIN, '--stream-window', String(1 << 20), '--conn-window', String(4 << 20)], node: [] },
  { name: 'global-limit', args: RETAIN, node: ['--external-memory-accounted-in-global-limit'] },
]

export async function benchRelay(argv: readonly string[] = []): Promise<void> {
  const { values } = parseArgs({ args: [...argv], options: { rounds: { type: 'string', default: '3' }, gib: { type: 'string', default: '2' }, only: { type: 'string' } } })
  const rounds = Number(values.rounds)
  const bytes = Number(values.gib) * 2 ** 30
  const only = values.only?.split(',')
  const variants = only ? VARIANTS.filter((v) => only.includes(v.name)) : VARIANTS
  if (variants.length === 0) throw new Error(`--only: none of ${values.only} (variants: ${VARIANTS.map((v) => v.name).join(', ')})`)
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-relay-'))
  try {
    const key = join(dir, 'key.pem')
    const cert = join(dir, 'cert.pem')
    await promisify(execFile)('openssl', ['req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:P-256', '-nodes', '-keyout', key, '-out', cert, '-days', '1', '-subj', '/CN=relay'])
    console.log(`relay: ${rounds} rounds of ${values.gib} GiB per variant, one connection; ${machineLine()}`)
    const runs: Run[] = []
    for (let r = 0; r < rounds; r++) {
      for (const v of r % 2 === 0 ? variants : [...variants].reverse()) {
        const run = await once(v, bytes, key, cert)
        runs.push(run)
        console.log(`round ${r + 1}/${rounds} ${v.name}: ${run.gbits.toFixed(2)} Gbit/s, CPU ${(run.client.cpuSeconds + run.server.cpuSeconds).toFixed(2)} s, major GCs ${run.client.major} + ${run.server.major}`)
      }
    }
    report(variants, runs, bytes)
    const out = await writeResults('relay', { machine: machineLine(), source: await sourceState(), rounds, bytes, variants, runs })
    console.log(`\nraw: ${out.slice(out.indexOf('scripts/'))}`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

async function once(v: Variant, bytes: number, key: string, cert: string): Promise<Run> {
  let received = 0
  let done!: () => void
  const finished = new Promise<void>((resolve) => { done = resolve })
  const sink = net.createServer((s) => s.on('data', (c: Buffer) => { received += c.length; if (received >= bytes) done() }))
  await new Promise<void>((resolve) => sink.listen(0, '127.0.0.1', resolve))
  const start = async (args: string[]): Promise<{ child: ChildProcess; port: number }> => {
    const child = fork(here('./relay-proxy.ts'), [...args, ...v.args], { execArgv: [...process.execArgv.filter((a) => !a.startsWith('--max-semi')), ...v.node], stdio: ['ignore', 'inherit', 'inherit', 'ipc'] })
    const port = await new Promise<number>((resolve, reject) => {
      child.once('message', (m) => resolve((m as { port: number }).port))
      child.once('exit', (code) => reject(new Error(`relay-proxy ${args[1]} exited with ${code}`)))
    })
    return { child, port }
  }
  const children: ChildProcess[] = []
  try {
    const server = await start(['--role', 'server', '--listen', '0', '--to', `127.0.0.1:${(sink.address() as net.AddressInfo).port}`, '--cert', cert, '--key', key])
    children.push(server.child)
    const client = await start(['--role', 'client', '--listen', '0', '--to', `127.0.0.1:${server.port}`])
    children.push(client.child)
    return await transfer(v, bytes, client, server.child, finished, done, () => received)
  } finally {
    // Normally they exited after their report; after a failure they must not outlive the bench.
    for (const c of children) if (c.exitCode === null) c.kill()
    sink.close()
  }
}

async function transfer(v: Variant, bytes: number, client: { child: ChildProcess; port: number }, server: ChildProcess, finished: Promise<void>, done: () => void, received: () => number): Promise<Run> {
  const chunk = Buffer.alloc(1 << 20, 7)
  const t0 = performance.now()
  const source = net.connect(client.port, '127.0.0.1')
  source.on('error', () => done())
  try {
    return await measure(v, bytes, client.child, server, source, chunk, t0, finished, done, received)
  } finally {
    source.destroy()
  }
}

async function measure(v: Variant, bytes: number, client: ChildProcess, server: ChildProcess, source: net.Socket, chunk: Buffer, t0: number, finished: Promise<void>, done: () => void, received: () => number): Promise<Run> {
  let sent = 0
  const pump = (): void => {
    while (sent < bytes) {
      sent += chunk.length
      if (!source.write(chunk)) return void source.once('drain', pump)
    }
  }
  source.once('connect', pump)
  const timeout = setTimeout(() => done(), 120_000)
  await finished
  clearTimeout(timeout)
  const seconds = (performance.now() - t0) / 1000
  if (received() < bytes) throw new Error(`${v.name}: ${received()} of ${bytes} bytes in 120 s`)
  const ask = (c: ChildProcess): Promise<Report> => new Promise((resolve) => { c.once('message', (m) => resolve(m as Report)); c.send('report') })
  const [c, s] = [await ask(client), await ask(server)]
  return { variant: v.name, gbits: (bytes * 8) / seconds / 1e9, client: c, server: s }
}

function report(variants: readonly Variant[], runs: readonly Run[], bytes: number): void {
  const gb = bytes / 1e9
  const f = (xs: number[], d = 2): string => `${median(xs).toFixed(d)} (${Math.min(...xs).toFixed(d)}–${Math.max(...xs).toFixed(d)})`
  console.log('\n| variant | Gbit/s | CPU s per GB, client relay / server relay | major GCs per GB, client / server | young GCs per GB (forced), client / server | heap used at the end, MiB |')
  console.log('|---|---|---|---|---|---|')
  for (const v of variants) {
    const rs = runs.filter((r) => r.variant === v.name)
    const per = (x: (r: Run) => number, d = 2): string => f(rs.map((r) => x(r) / gb), d)
    console.log(`| ${v.name} (${[...v.node, ...v.args].join(' ')}) | ${f(rs.map((r) => r.gbits))} | ${per((r) => r.client.cpuSeconds)} / ${per((r) => r.server.cpuSeconds)} | ${per((r) => r.client.major, 1)} / ${per((r) => r.server.major, 1)} | ${per((r) => r.client.minor, 1)} (${per((r) => r.client.forced, 1)}) / ${per((r) => r.server.minor, 1)} (${per((r) => r.server.forced, 1)}) | ${f(rs.map((r) => r.client.heapMiB), 0)} |`)
  }
}

