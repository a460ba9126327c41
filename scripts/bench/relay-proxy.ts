// One side of `npm run bench -- relay`: Node's TLS + HTTP/2 relay with nothing of hostmesh's
// but its HTTP/2 settings. `client`: accepts TCP on --listen and carries each connection as a
// CONNECT stream over one TLS session to --to. `server`: terminates that TLS, answers each
// CONNECT stream and joins it to a TCP connection to --to. Both join with pipe() both ways,
// as daemon/tunnel/splice.ts does. Asked over IPC, it reports its CPU time and collections.
// Variants come in as flags: --young MiB (a young-generation collection each time that many
// bytes came out of HTTP/2 streams, as daemon/tunnel/relay-gc.ts does; --young-from socket|both:
// out of the TCP sockets, or both; socket-drained, both-drained: the socket's bytes collected
// for when the stream's write queue drains), --stream-window/--conn-window bytes, --retain MiB (live
// heap kept, as a daemon's policy and code keep ~20 MiB).
import { readFileSync } from 'node:fs'
import http2 from 'node:http2'
import net from 'node:net'
import { constants, PerformanceObserver } from 'node:perf_hooks'
import { parseArgs } from 'node:util'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import type { Duplex } from 'node:stream'
import { isMainThread, parentPort, Worker } from 'node:worker_threads'
import { H2_SETTINGS, CONNECTION_WINDOW } from '../../daemon/tunnel/settings.ts'

const { values: o } = parseArgs({ options: {
  role: { type: 'string' }, listen: { type: 'string' }, to: { type: 'string' }, cert: { type: 'string' }, key: { type: 'string' },
  young: { type: 'string', default: '0' }, 'young-from': { type: 'string', default: 'stream' }, 'stream-window': { type: 'string' }, 'conn-window': { type: 'string' }, retain: { type: 'string', default: '0' },
  'in-worker': { type: 'boolean' },
} })

// --in-worker: the relay runs in a worker thread (as a hostmesh worker's data plane does), this
// thread only passes the bench's messages through.
if (o['in-worker'] && isMainThread) {
  const worker = new Worker(new URL(import.meta.url), { argv: process.argv.slice(2).filter((a) => a !== '--in-worker') })
  worker.on('message', (m: { cpuSeconds?: number }) => {
    if (m.cpuSeconds === undefined) process.send!(m)
    else process.send!(m, () => process.exit(0))
  })
  process.on('message', (m) => worker.postMessage(m))
} else {
  relay()
}

function relay(): void {
  const retained = Array.from({ length: Number(o.retain) * 6_000 }, (_, i) => ({ i, s: `x${i}`, a: [i, i + 1] }))
  const settings = { ...H2_SETTINGS, ...(o['stream-window'] ? { initialWindowSize: Number(o['stream-window']) } : {}) }
  const connWindow = o['conn-window'] ? Number(o['conn-window']) : CONNECTION_WINDOW

  const gcs = { major: 0, minor: 0, forced: 0 }
  new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const kind = (e as unknown as { detail: { kind: number } }).detail.kind
      if (kind === constants.NODE_PERFORMANCE_GC_MAJOR) gcs.major++
      else if (kind === constants.NODE_PERFORMANCE_GC_MINOR) gcs.minor++
    }
  }).observe({ entryTypes: ['gc'] })

  const youngStep = Number(o.young) * 2 ** 20
  const youngFrom = o['young-from']
  let fromStreams = 0
  let collect: ((o: { type: 'minor' }) => void) | undefined
  if (youngStep > 0) {
    setFlagsFromString('--expose-gc')
    collect = runInNewContext('gc') as (o: { type: 'minor' }) => void
  }
  const counted = (c: Buffer): void => {
    fromStreams += c.length
    if (fromStreams >= youngStep) {
      fromStreams = 0
      gcs.forced++
      collect!({ type: 'minor' })
    }
  }

  function join(socket: Duplex, stream: Duplex): void {
    if (collect && youngFrom !== 'socket' && youngFrom !== 'socket-drained') stream.on('data', counted)
    if (collect && (youngFrom === 'socket' || youngFrom === 'both')) socket.on('data', counted)
    if (collect && (youngFrom === 'socket-drained' || youngFrom === 'both-drained')) {
      // The socket's chunks are held by the stream until written: count them, and collect only
      // when the stream's queue has drained (nothing of them left alive).
      let pending = 0
      socket.on('data', (c: Buffer) => { pending += c.length })
      stream.on('drain', () => { if (pending >= youngStep) { pending = 0; gcs.forced++; collect!({ type: 'minor' }) } })
    }
    socket.on('error', () => stream.destroy())
    stream.on('error', () => socket.destroy())
    socket.pipe(stream)
    stream.pipe(socket)
  }

  const send = (m: object): void => { if (isMainThread) process.send!(m); else parentPort!.postMessage(m) }
  const [host, port] = o.to!.split(':') as [string, string]
  const started = process.cpuUsage()
  if (o.role === 'client') {
    const session = http2.connect(`https://${o.to}`, { rejectUnauthorized: false, settings })
    session.once('connect', () => session.setLocalWindowSize(connWindow))
    session.on('error', () => undefined)
    net.createServer((socket) => {
      const stream = session.request({ ':method': 'CONNECT', ':authority': 'sink:1' })
      join(socket, stream)
    }).listen(Number(o.listen), '127.0.0.1', function (this: net.Server) { send({ port: (this.address() as net.AddressInfo).port }) })
  } else {
    const server = http2.createSecureServer({ cert: readFileSync(o.cert!), key: readFileSync(o.key!), settings })
    server.on('session', (s) => { s.once('localSettings', () => s.setLocalWindowSize(connWindow)); s.on('error', () => undefined) })
    server.on('stream', (stream) => {
      stream.respond({ ':status': 200 })
      join(net.connect(Number(port), host), stream)
    })
    server.listen(Number(o.listen), '127.0.0.1', () => send({ port: (server.address() as net.AddressInfo).port }))
  }

  const report = (): object => {
    const cpu = process.cpuUsage(started)
    return { cpuSeconds: (cpu.user + cpu.system) / 1e6, ...gcs, retained: retained.length, heapMiB: process.memoryUsage().heapUsed / 2 ** 20 }
  }
  if (isMainThread) process.on('message', () => process.send!(report(), () => process.exit(0)))
  else parentPort!.on('message', () => parentPort!.postMessage(report()))
}
