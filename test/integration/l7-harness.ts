// Shared parts of the in-process L7 tests (l7-*.test.ts): policy compiled by the real
// pipeline, the source host's request path (outboundHttp), real telemetry into a log sink and a prom-client registry, a
// local origin that speaks HTTP/1.1 and h2c on one port and records what reached it, TCP
// listeners that hand each connection to a request path, and small real clients.
import { FrontMetrics } from '../../daemon/l7/front-metrics.ts'
import { replay } from '../../daemon/l7/detect.ts'
import { createHash } from 'node:crypto'
import http, { type Agent, type IncomingHttpHeaders, type IncomingMessage, type ServerResponse } from 'node:http'
import http2, { type ClientHttp2Session, type OutgoingHttpHeaders, type ServerHttp2Stream } from 'node:http2'
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import pino from 'pino'
import { Registry, type Counter } from 'prom-client'
import type { Test } from 'tap'
import type { Logger } from '../../base/logger.ts'
import { httpMetrics } from '../../daemon/metrics/istio-http.ts'
import { tcpMetrics } from '../../daemon/metrics/istio-tcp.ts'
import { ConnectionTelemetry } from '../../daemon/telemetry/connection.ts'
import { RequestTelemetry } from '../../daemon/telemetry/request.ts'
import { formatProblem } from '../../policy/errors.ts'
import { hashFiles } from '../../policy/load.ts'
import { buildSnapshot } from '../../policy/pipeline.ts'
import type { Endpoint, Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import { Balancer } from '../../daemon/balance/balancer.ts'
import { CircuitBreakers } from '../../daemon/limits/circuit-breaker.ts'
import { LocalHostState } from '../../daemon/limits/host-state.ts'
import { RetryBudgets } from '../../daemon/limits/retry-budget.ts'
import { DEFAULT_L7_LIMITS } from '../../daemon/l7/limits.ts'
import { MirrorMetrics } from '../../daemon/l7/mirror-metrics.ts'
import { OutboundHttp, type EndpointConnect } from '../../daemon/l7/outbound.ts'
import { RetryMetrics } from '../../daemon/l7/retry-metrics.ts'
import type { WorkloadCaps } from '../../daemon/limits/workload-caps.ts'
import { WorkloadLimits } from '../../daemon/limits/workload-limits.ts'
import { until } from '../helpers/admin.ts'
import { logSink } from '../helpers/log-sink.ts'

export const V = 'apiVersion: hostmesh.io/v1alpha1\n'

/** Plain TCP to the endpoint, as the daemon's connect does for endpoints outside the mesh. */
export function tcpEndpoint(_source: WorkloadInfo, ep: Endpoint): Promise<Duplex> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: ep.address, port: ep.port }, () => resolve(s))
    s.once('error', reject)
  })
}

/** The source host's request path with fresh balancer, breakers and budgets, torn down with `t`. */
export function outboundHttp(t: Test, snapshot: () => Snapshot | undefined, tel: Telemetry, connect: EndpointConnect = tcpEndpoint, caps?: WorkloadCaps): OutboundHttp {
  const outbound = new OutboundHttp({
    workloads: new WorkloadLimits(new LocalHostState(), tel.registry, tel.log, caps), front: new FrontMetrics(tel.registry),
    snapshot, balancer: new Balancer(), breakers: new CircuitBreakers(new LocalHostState(), tel.registry),
    retryBudgets: new RetryBudgets(), retries: new RetryMetrics(tel.registry), mirrors: new MirrorMetrics(tel.registry),
    log: tel.log, telemetry: tel.requests, connections: tel.connections, limits: DEFAULT_L7_LIMITS, traceparent: false, connect,
  })
  t.teardown(() => outbound.destroy())
  return outbound
}

/** `docs` (YAML documents, joined with ---) compiled for node-a, as the daemon would. */
export function compile(docs: readonly string[]): Snapshot {
  const files = [{ path: 'p.yaml', text: docs.join('---\n'), sha256: 'x' }]
  const r = buildSnapshot({ dir: 'd', missing: false, files, hash: hashFiles(files), problems: [] }, { generation: 1, trustDomain: 'cluster.local', localNode: 'node-a' })
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join('\n'))
  return r.snapshot
}

export interface Telemetry {
  readonly log: Logger
  readonly registry: Registry
  readonly requests: RequestTelemetry
  readonly connections: ConnectionTelemetry
  /** The access-log lines for requests (`"access":"http"`), in order. */
  access(): Array<Record<string, unknown>>
  /** Every log line. */
  lines(): Array<Record<string, unknown>>
  /** istio_requests_total summed over the series whose labels include `labels`. */
  requestsTotal(labels: Record<string, string>): Promise<number>
  /** Waits for `n` access lines after the first `from`, and returns them. */
  accessSince(from: number, n: number, timeoutMs?: number): Promise<Array<Record<string, unknown>>>
}

export function telemetry(): Telemetry {
  const sink = logSink()
  const log = pino({ level: 'debug' }, sink.dest)
  const registry = new Registry()
  const access = (): Array<Record<string, unknown>> => sink.lines().filter((l) => l.access === 'http')
  return {
    log, registry, lines: sink.lines, access,
    requests: new RequestTelemetry(httpMetrics(registry), log),
    connections: new ConnectionTelemetry(tcpMetrics(registry), log),
    async requestsTotal(labels) {
      const m = registry.getSingleMetric('istio_requests_total') as Counter | undefined
      if (!m) return 0
      const { values } = await m.get()
      return values.filter((v) => Object.entries(labels).every(([k, want]) => String(v.labels[k]) === want)).reduce((a, v) => a + v.value, 0)
    },
    async accessSince(from, n, timeoutMs = 3000) {
      await until(() => access().length >= from + n, `${n} access-log lines`, timeoutMs, 10)
      return access().slice(from)
    },
  }
}

/** `p`, or a rejection naming `what` after `ms`. */
export function within<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`timed out: ${what}`)), ms) })
  return Promise.race([p, timeout]).finally(() => clearTimeout(timer))
}

export interface OriginRequest {
  readonly version: '1.1' | '2'
  readonly method: string
  readonly url: string
  readonly headers: IncomingHttpHeaders
  /** The TCP connection it came on (server side). */
  readonly tcp: Socket
  bytes: number
  sha256?: string
  trailers?: IncomingHttpHeaders
  /** The request (stream) closed before its response was finished; HTTP/2: with this code. */
  closedEarly?: boolean
  rstCode?: number
}

export interface Origin {
  readonly name: string
  readonly port: number
  readonly requests: OriginRequest[]
  /** Server-side TCP connections open now. */
  readonly open: Set<Socket>
  /** Every TCP connection accepted. */
  accepted: number
  /** Lets the requests waiting on /gate now answer (later ones wait again). */
  release(): void
  /** The requests whose url starts with `prefix`. */
  seen(prefix: string): OriginRequest[]
}

/** What the origin answers for a request it read whole: a JSON description of it. */
function describe(name: string, r: OriginRequest): string {
  return JSON.stringify({ name, version: r.version, method: r.method, url: r.url, headers: r.headers, bytes: r.bytes, sha256: r.sha256, trailers: r.trailers ?? null })
}

/**
 * A local origin on 127.0.0.1, HTTP/1.1 and h2c (prior knowledge) on one port. By path:
 *   /gate…        answers once release() is called
 *   /slow…        sends the head and 1 KiB, then nothing (until the request goes away)
 *   /die…         sends a head promising 100 000 bytes, 1 KiB, then drops the connection
 *   /trailers…    a chunked (HTTP/1.1) or gRPC-style (HTTP/2) answer with trailers
 *   /grpc-status/<n>  HTTP/2: a trailers-only gRPC answer with that grpc-status
 *   /status/<n>…  that status
 *   …/flaky/<k>/…  (anywhere in the path) 503 to the first k requests for that url (over every origin sharing `flaky`), then as below
 *   /sleepy/<ms>/<k>/…  the first k requests for that url wait ms before they are answered
 *   /grpc-flaky/<k>/…  HTTP/2: trailers-only UNAVAILABLE to the first k, then a gRPC-style answer
 *   anything else the JSON description of the request, once its body is in
 * Upgrade: /ws… answers 101 and echoes bytes (prefixed `<name>:`); /gate… waits for release()
 * and drops the connection; other paths answer 400.
 */
export async function origin(t: Test, name: string, flaky: Map<string, number> = new Map()): Promise<Origin> {
  /** How many requests for `url` came before this one (over the origins sharing `flaky`). */
  const nth = (url: string): number => {
    const n = flaky.get(url) ?? 0
    flaky.set(url, n + 1)
    return n
  }
  const firstK = (url: string, prefix: string): number => Number(new RegExp(`/${prefix}/(\\d+)/`).exec(url)?.[1] ?? -1)
  const gates: Array<() => void> = []
  let released = false
  const o: Origin = {
    name, port: 0, requests: [], open: new Set(), accepted: 0,
    release() { for (const g of gates.splice(0)) g() },
    seen: (prefix) => o.requests.filter((r) => r.url.startsWith(prefix)),
  }
  const tcpOf = new WeakMap<object, Socket>()
  const gate = (fn: () => void): void => { if (released) fn(); else gates.push(fn) }
  const sleepy = (url: string, answer: () => void): void => {
    const m = /^\/sleepy\/(\d+)\/(\d+)\//.exec(url)
    if (!m || nth(url) >= Number(m[2])) return answer()
    const timer = setTimeout(answer, Number(m[1]))
    sleepers.add(timer)
  }
  const sleepers = new Set<NodeJS.Timeout>()

  const h1 = http.createServer((req: IncomingMessage, res: ServerResponse) => {
    const r: OriginRequest = { version: '1.1', method: req.method ?? '', url: req.url ?? '', headers: req.headers, tcp: req.socket as Socket, bytes: 0 }
    o.requests.push(r)
    res.once('close', () => { if (!res.writableFinished) r.closedEarly = true })
    const hash = createHash('sha256')
    req.on('data', (c: Buffer) => { r.bytes += c.length; hash.update(c) })
    req.on('end', () => {
      r.sha256 = hash.digest('hex')
      if (Object.keys(req.trailers).length > 0) r.trailers = req.trailers
      const url = r.url
      if (url.startsWith('/slow')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream' })
        return void res.write(Buffer.alloc(1024, 115))
      }
      if (url.startsWith('/die')) {
        res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': '100000' })
        res.write(Buffer.alloc(1024, 100))
        return void setTimeout(() => req.socket.destroy(), 20)
      }
      if (url.startsWith('/trailers')) {
        res.writeHead(200, { 'content-type': 'application/json', trailer: 'x-custom-trailer', 'x-server': name })
        res.write(describe(name, r))
        res.addTrailers({ 'x-custom-trailer': 'yes' })
        return void res.end()
      }
      // An interim 103 first: the proxy must answer once, with the final status.
      if (url.startsWith('/hints')) res.writeEarlyHints({ link: '</style.css>; rel=preload' })
      const status = /\/status\/(\d{3})/.exec(url)
      const failing = url.includes('/flaky/') && nth(url) < firstK(url, 'flaky')
      const answer = (): void => {
        const body = describe(name, r)
        res.writeHead(failing ? 503 : status ? Number(status[1]) : 200, { 'content-type': 'application/json', 'content-length': String(Buffer.byteLength(body)), 'x-server': name, 'x-origin-only': 'o' })
        res.end(body)
      }
      if (url.startsWith('/gate')) gate(answer)
      else if (url.startsWith('/sleepy/')) sleepy(url, answer)
      else answer()
    })
  })
  h1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
    const r: OriginRequest = { version: '1.1', method: req.method ?? '', url: req.url ?? '', headers: req.headers, tcp: req.socket as Socket, bytes: head.length }
    o.requests.push(r)
    socket.on('error', () => undefined)
    if (r.url.startsWith('/gate')) return void gate(() => socket.destroy())
    if (!r.url.startsWith('/ws')) return void socket.end(`HTTP/1.1 400 Bad Request\r\ncontent-type: text/plain\r\ncontent-length: 5\r\nx-server: ${name}\r\n\r\nnope!`)
    socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: ${String(req.headers.upgrade)}\r\nconnection: Upgrade\r\nx-server: ${name}\r\n\r\nwelcome`)
    const echo = (c: Buffer): void => { r.bytes += c.length; socket.write(`${name}:${c.toString()}`) }
    if (head.length > 0) echo(head)
    socket.on('data', echo)
    socket.on('end', () => socket.end())
  })

  const h2 = http2.createServer()
  h2.on('stream', (stream: ServerHttp2Stream, headers) => {
    stream.on('error', () => undefined)
    const tcp = tcpOf.get(stream.session?.socket as object) ?? (stream.session?.socket as unknown as Socket)
    const r: OriginRequest = { version: '2', method: String(headers[':method']), url: String(headers[':path']), headers, tcp, bytes: 0 }
    o.requests.push(r)
    stream.once('close', () => {
      if (!stream.writableFinished || stream.rstCode !== http2.constants.NGHTTP2_NO_ERROR) {
        r.closedEarly = !stream.writableFinished
        r.rstCode = stream.rstCode
      }
    })
    const hash = createHash('sha256')
    stream.on('trailers', (tr: IncomingHttpHeaders) => { r.trailers = tr })
    stream.on('data', (c: Buffer) => { r.bytes += c.length; hash.update(c) })
    stream.on('end', () => {
      r.sha256 = hash.digest('hex')
      if (stream.destroyed) return
      const url = r.url
      if (url.startsWith('/slow')) {
        stream.respond({ ':status': 200 })
        return void stream.write(Buffer.alloc(1024, 115))
      }
      if (url.startsWith('/die')) {
        stream.respond({ ':status': 200, 'content-length': '100000' })
        stream.write(Buffer.alloc(1024, 100))
        return void setTimeout(() => stream.session?.destroy(), 20)
      }
      if (url.startsWith('/grpc-flaky/') && nth(url) < firstK(url, 'grpc-flaky')) {
        return void stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': '14', 'grpc-message': 'flaky' }, { endStream: true })
      }
      const grpcStatus = /^\/grpc-status\/(\d+)/.exec(url)
      if (grpcStatus) return void stream.respond({ ':status': 200, 'content-type': 'application/grpc', 'grpc-status': grpcStatus[1]!, 'grpc-message': 'from the origin' }, { endStream: true })
      if (url.startsWith('/trailers') || url.startsWith('/grpc-flaky/')) {
        stream.respond({ ':status': 200, 'content-type': String(headers['content-type'] ?? 'application/json'), 'x-server': name }, { waitForTrailers: true })
        stream.on('wantTrailers', () => stream.sendTrailers({ 'grpc-status': '0', 'grpc-message': 'ok', 'x-custom-trailer': 'yes' }))
        return void stream.end(describe(name, r))
      }
      const status = /\/status\/(\d{3})/.exec(url)
      const failing = url.includes('/flaky/') && nth(url) < firstK(url, 'flaky')
      const answer = (): void => {
        if (stream.destroyed) return
        stream.respond({ ':status': failing ? 503 : status ? Number(status[1]) : 200, 'content-type': 'application/json', 'x-server': name, 'x-origin-only': 'o' })
        stream.end(describe(name, r))
      }
      if (url.startsWith('/gate')) gate(answer)
      else if (url.startsWith('/sleepy/')) sleepy(url, answer)
      else answer()
    })
  })

  const server: Server = createServer((socket) => {
    o.accepted++
    o.open.add(socket)
    // HTTP/2 from JS (the replay below) writes small frames: without this, Nagle's algorithm
    // holds them for delayed ACKs, and an upload crawls.
    socket.setNoDelay(true)
    socket.once('close', () => o.open.delete(socket))
    socket.on('error', () => undefined)
    socket.once('data', (first: Buffer) => {
      socket.pause()
      if (first.toString('latin1', 0, 3) === 'PRI') {
        // http2's server reads a TCP socket's handle directly, past unshift(): replay the preface.
        const io = replay(socket, first)
        tcpOf.set(io, socket)
        h2.emit('connection', io)
        return
      }
      socket.unshift(first)
      h1.emit('connection', socket)
      socket.resume()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  ;(o as { port: number }).port = (server.address() as AddressInfo).port
  t.teardown(() => {
    released = true
    o.release()
    for (const timer of sleepers) clearTimeout(timer)
    for (const s of o.open) s.destroy()
    server.close()
    h1.close()
    h2.close()
  })
  return o
}

export interface Front {
  readonly port: number
  /** Connections accepted so far. */
  accepted: number
}

/** A TCP listener on 127.0.0.1 that hands every connection to `serve`. */
export async function front(t: Test, serve: (socket: Socket) => void): Promise<Front> {
  const f = { port: 0, accepted: 0 }
  const sockets = new Set<Socket>()
  const server = createServer((socket) => {
    f.accepted++
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
    serve(socket)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  f.port = (server.address() as AddressInfo).port
  t.teardown(() => {
    for (const s of sockets) s.destroy()
    server.close()
  })
  return f
}

/** A TCP connection to 127.0.0.1:port. */
export function tcp(port: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port }, () => resolve(s))
    s.once('error', reject)
  })
}

export interface H1Answer {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: string
  readonly trailers: IncomingHttpHeaders
  /** The client side's local port: which connection carried it. */
  readonly localPort: number | undefined
}

/** One HTTP/1.1 request; `body` written whole (with content-length unless headers say otherwise). */
export function h1(port: number, agent: Agent | false, opts: { method?: string; path: string; headers?: OutgoingHttpHeaders; body?: string | Buffer }): Promise<H1Answer> {
  return within(new Promise<H1Answer>((resolve, reject) => {
    const req = http.request({ host: '127.0.0.1', port, agent, method: opts.method ?? 'GET', path: opts.path, headers: { host: 'api.t:80', ...opts.headers } }, (res) => {
      const chunks: Buffer[] = []
      res.on('data', (c: Buffer) => chunks.push(c))
      res.on('end', () => resolve({ status: res.statusCode ?? 0, headers: res.headers, body: Buffer.concat(chunks).toString(), trailers: res.trailers, localPort: res.socket?.localPort }))
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end(opts.body)
  }), 5000, `${opts.method ?? 'GET'} ${opts.path}`)
}

export interface H2Answer {
  readonly headers: http2.IncomingHttpHeaders
  /** The response head ended the stream (a trailers-only answer). */
  readonly endStream: boolean
  readonly body: string
  readonly trailers: http2.IncomingHttpHeaders | undefined
}

/** One HTTP/2 request on `session`; `trailers` sent after the body when given. */
export function h2(session: ClientHttp2Session, headers: OutgoingHttpHeaders, body?: string | Buffer, trailers?: OutgoingHttpHeaders): Promise<H2Answer> {
  return within(new Promise<H2Answer>((resolve, reject) => {
    const s = session.request({ ':method': 'GET', ':authority': 'api.t:80', ...headers }, trailers ? { waitForTrailers: true } : {})
    let head: http2.IncomingHttpHeaders = {}
    let endStream = false
    let tr: http2.IncomingHttpHeaders | undefined
    const chunks: Buffer[] = []
    if (trailers) s.on('wantTrailers', () => s.sendTrailers(trailers))
    s.on('response', (h, flags) => { head = h; endStream = (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0 })
    s.on('trailers', (h) => { tr = h })
    s.on('data', (c: Buffer) => chunks.push(c))
    s.on('end', () => resolve({ headers: head, endStream, body: Buffer.concat(chunks).toString(), trailers: tr }))
    s.on('error', reject)
    s.end(body)
  }), 5000, `${String(headers[':method'] ?? 'GET')} ${String(headers[':path'])}`)
}

/** An h2c session with prior knowledge to 127.0.0.1:port, closed at teardown. */
export async function h2session(t: Test, port: number): Promise<ClientHttp2Session> {
  const s = http2.connect(`http://127.0.0.1:${port}`)
  s.on('error', () => undefined)
  t.teardown(() => { s.destroy() })
  await within(new Promise<void>((resolve, reject) => { s.once('connect', () => resolve()); s.once('error', reject) }), 3000, 'h2c connect')
  return s
}

/** Reads from `s` until `done(text so far)` holds; resolves with the text. */
export function readUntil(s: Socket, done: (text: string) => boolean, ms = 3000): Promise<string> {
  let text = ''
  return within(new Promise<string>((resolve, reject) => {
    const onData = (c: Buffer): void => {
      text += c.toString('latin1')
      if (done(text)) { s.off('data', onData); s.off('close', onClose); resolve(text) }
    }
    const onClose = (): void => { s.off('data', onData); done(text) ? resolve(text) : reject(new Error(`closed after ${JSON.stringify(text.slice(0, 200))}`)) }
    s.on('data', onData)
    s.once('close', onClose)
  }), ms, 'bytes from the proxy')
}

/** Resolves when `s` has closed. */
export function closed(s: { once(ev: 'close', fn: () => void): unknown; destroyed: boolean }, ms = 3000): Promise<void> {
  if (s.destroyed) return Promise.resolve()
  return within(new Promise<void>((r) => { s.once('close', () => r()) }), ms, 'the connection to close')
}
