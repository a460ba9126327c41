// An HTTP workload for the end-to-end tests: answers every request with what it received
// (method, target, headers, HTTP version, peer address, body length and sha256) as JSON, and
// prints one line per request on stdout ("REQ <method> <target>") so a test can see exactly
// what reached it. One port speaks HTTP/1.1 and HTTP/2 with prior knowledge (told apart by the
// preface). Every response carries `x-server: NAME`, so a test sees which instance answered.
//   node http-server.ts NAME PORT [DEFAULT_QUERY]
//
// Paths (anywhere in the path):
//   .../status/<code>   answers that status
//   .../stream/<n>      n chunks of 1 KB, 20 ms apart (chunked)
//   .../slow/<ms>       answers after ms
//   WebSocket upgrade   echoes text messages back, prefixed with NAME
//
// Failure behaviour the test controls, per request by query parameters (a request's own
// parameters override the instance's defaults: DEFAULT_QUERY, or the last POST /_config):
//   delay=MS     answer (or fail) MS ms after the request body has ended
//   status=N     a failing request gets status N (default 503)
//   reset=1      a failing request gets no response: its connection (HTTP/1.1) or stream
//                (HTTP/2) is reset once its body has been read
//   fail=F       the fraction F (0..1) of requests that fail; the others get 200 (or the
//                path's /status/<code>). Without `fail`, every request with `status` or `reset`
//                fails, so `?status=503` alone answers 503 every time.
//   failMode=every (default) deterministic per instance and path: request k (0-based) of a
//                path fails when ceil((k+1)F) > ceil(kF), so F = 0.5 fails the 1st, 3rd, 5th…
//                and F = 0.1 the 1st, 11th, 21st…: exactly F of any run of 1/F requests.
//   failMode=random  each request fails with probability F.
//
// Control endpoints (not counted, not printed, whatever their method):
//   /_stats        JSON counters since the start or the last reset:
//                    name, config (the instance defaults), requests (tries seen), inFlight,
//                    maxInFlight (most requests in flight at once), cancelled (requests whose
//                    client went away before the response was complete: the server saw
//                    `close` first), failed (requests failed by `fail`/`status`/`reset`),
//                    byMethod, byPath (path without query; at most 1,000 paths, then
//                    "(other)"), byStatus (statuses sent), byAttempt (requests by their
//                    x-hostmesh-attempt-count header, "-" when absent), bodies (the last 100
//                    non-empty request bodies: {method, path, bytes, sha256}).
//   /_reset        zeroes the counters and the `every` sequences (keeps the config); answers
//                  the stats as they were just before.
//   /_config?...   replaces the instance defaults with this query (empty: none); answers them.
import { createHash } from 'node:crypto'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import http2 from 'node:http2'
import { createServer } from 'node:net'
import { Duplex } from 'node:stream'

const [name, port] = [process.argv[2]!, Number(process.argv[3])]
let config = new URLSearchParams(process.argv[4] ?? '')

/** What both HTTP versions' responses offer, for this server's few calls. */
interface Reply {
  writeHead(status: number, headers: Record<string, string>): unknown
  write(chunk: Buffer): unknown
  end(body?: string): unknown
  on(event: 'close' | 'finish', listener: () => void): unknown
  readonly writableEnded: boolean
}

interface Body { method: string; path: string; bytes: number; sha256: string }

/** What /_stats answers (see the header); tests read it with `import type`. */
export interface ServerStats {
  name: string
  config: Record<string, string>
  requests: number
  inFlight: number
  maxInFlight: number
  cancelled: number
  failed: number
  byMethod: Record<string, number>
  byPath: Record<string, number>
  byStatus: Record<string, number>
  byAttempt: Record<string, number>
  bodies: Body[]
}

const MAX_PATHS = 1000
const MAX_BODIES = 100

function freshStats() {
  return {
    requests: 0, maxInFlight: 0, cancelled: 0, failed: 0,
    byMethod: {} as Record<string, number>, byPath: {} as Record<string, number>,
    byStatus: {} as Record<string, number>, byAttempt: {} as Record<string, number>,
    bodies: [] as Body[],
  }
}
let stats = freshStats()
let inFlight = 0
/** Per path: how many requests the `every` mode has decided so far. */
let sequences = new Map<string, number>()

const bump = (m: Record<string, number>, key: string): void => { m[key] = (m[key] ?? 0) + 1 }
const snapshot = (): string => JSON.stringify({ name, config: Object.fromEntries(config), inFlight, ...stats } satisfies ServerStats)

/** Whether this request fails, by `fail` and `failMode` (see the header). */
function failing(q: URLSearchParams, path: string): boolean {
  if (!q.has('fail')) return q.has('status') || q.get('reset') === '1'
  const f = Math.min(1, Math.max(0, Number(q.get('fail')) || 0))
  if (q.get('failMode') === 'random') return Math.random() < f
  const k = sequences.get(path) ?? 0
  sequences.set(path, k + 1)
  // The epsilon keeps k·F from rounding up past an integer it equals (0.1 × 10).
  return Math.ceil((k + 1) * f - 1e-9) > Math.ceil(k * f - 1e-9)
}

function control(path: string, query: URLSearchParams, res: Reply): void {
  let out: string
  if (path === '/_reset') {
    out = snapshot()
    stats = freshStats()
    stats.maxInFlight = inFlight
    sequences = new Map()
  } else if (path === '/_config') {
    config = new URLSearchParams(query)
    out = JSON.stringify(Object.fromEntries(config))
  } else {
    out = snapshot()
  }
  res.writeHead(200, { 'content-type': 'application/json', 'x-server': name })
  res.end(out)
}

function handle(req: IncomingMessage | http2.Http2ServerRequest, response: ServerResponse | http2.Http2ServerResponse): void {
  const res = response as unknown as Reply
  const url = req.url ?? '/'
  const parsed = URL.parse(url, 'http://x')
  // A target no URL parser takes (the hostile-input tests send some) is a path of its own.
  const path = parsed?.pathname ?? url
  const query = new URLSearchParams(config)
  for (const [k, v] of parsed?.searchParams ?? []) query.set(k, v)
  const isControl = path === '/_stats' || path === '/_reset' || path === '/_config'
  if (!isControl) {
    process.stdout.write(`REQ ${req.method} ${url}\n`)
    stats.requests++
    stats.maxInFlight = Math.max(stats.maxInFlight, ++inFlight)
    bump(stats.byMethod, req.method ?? '-')
    bump(stats.byPath, path in stats.byPath || Object.keys(stats.byPath).length < MAX_PATHS ? path : '(other)')
    const attempt = req.headers['x-hostmesh-attempt-count']
    bump(stats.byAttempt, typeof attempt === 'string' ? attempt : '-')
  }
  let timer: NodeJS.Timeout | undefined
  let settled = isControl
  const settle = (cancelled: boolean): void => {
    if (settled) return
    settled = true
    inFlight--
    if (cancelled) {
      stats.cancelled++
      clearTimeout(timer)
    }
  }
  // HTTP/2's compatibility response emits 'finish' even for a stream the client reset: what
  // tells a cancel apart is that end() was never called.
  res.on('finish', () => settle(!res.writableEnded))
  res.on('close', () => settle(!res.writableEnded))
  let body = 0
  const hash = createHash('sha256')
  req.on('data', (c: Buffer) => {
    body += c.length
    hash.update(c)
  })
  req.on('end', () => {
    if (isControl) return control(path, query, res)
    const sha256 = hash.digest('hex')
    if (body > 0) {
      stats.bodies.push({ method: req.method ?? '-', path, bytes: body, sha256 })
      if (stats.bodies.length > MAX_BODIES) stats.bodies.shift()
    }
    const status = /\/status\/(\d{3})/.exec(url)
    const stream = /\/stream\/(\d+)/.exec(url)
    const slow = /\/slow\/(\d+)/.exec(url)
    const info = JSON.stringify({ name, method: req.method, url, httpVersion: req.httpVersion, headers: req.headers, remote: req.socket.remoteAddress?.replace(/^::ffff:/, ''), body, ...(body > 0 ? { sha256 } : {}) })
    if (stream) {
      bump(stats.byStatus, '200')
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-server': name })
      let left = Number(stream[1])
      const tick = (): void => {
        if (left-- <= 0) return void res.end()
        res.write(Buffer.alloc(1024, 97))
        timer = setTimeout(tick, 20)
      }
      return tick()
    }
    const fails = failing(query, path)
    const send = (): void => {
      if (settled) return
      if (fails) stats.failed++
      if (fails && query.get('reset') === '1') {
        // Settled first: the reset is this server's doing, not a client's cancel.
        settle(false)
        if ('stream' in req) req.stream.close(http2.constants.NGHTTP2_INTERNAL_ERROR)
        else req.socket.destroy()
        return
      }
      const code = fails ? Number(query.get('status') ?? 503) : status ? Number(status[1]) : 200
      bump(stats.byStatus, String(code))
      res.writeHead(code, { 'content-type': 'application/json', 'x-server': name })
      res.end(info)
    }
    const wait = (slow ? Number(slow[1]) : 0) + (Number(query.get('delay')) || 0)
    if (wait > 0) timer = setTimeout(send, wait)
    else send()
  })
}

const h1 = http.createServer(handle)
h1.on('upgrade', (req: IncomingMessage, socket: Duplex) => websocket(req, socket))
const h2 = http2.createServer(handle)
const server = createServer((socket) => {
  socket.on('error', () => undefined)
  socket.once('data', (first: Buffer) => {
    socket.pause()
    if (first.toString('latin1', 0, 3) === 'PRI') {
      // http2's server reads the socket's handle directly, past unshift(): replay the preface.
      const io = new Duplex({
        read() { socket.resume() },
        write(c: Buffer, _e, cb) { socket.write(c, cb) },
        final(cb) { socket.end(); cb() },
        destroy(err, cb) { socket.destroy(err ?? undefined); cb(err) },
      })
      io.push(first)
      socket.on('data', (c: Buffer) => { if (!io.push(c)) socket.pause() })
      socket.once('end', () => io.push(null))
      socket.once('close', () => io.destroy())
      h2.emit('connection', io)
      return
    }
    socket.unshift(first)
    h1.emit('connection', socket)
    socket.resume()
  })
})
server.listen({ host: '::', port, ipv6Only: false }, () => process.stdout.write(`listening ${port}\n`))
process.on('SIGTERM', () => process.exit(0))

/** RFC 6455, just enough for text messages of up to 64 KiB: the handshake, then echo. */
function websocket(req: IncomingMessage, socket: Duplex): void {
  process.stdout.write(`REQ UPGRADE ${req.url}\n`)
  const key = req.headers['sec-websocket-key']
  if (typeof key !== 'string') return void socket.destroy()
  const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\nx-server: ${name}\r\n\r\n`)
  let buf = Buffer.alloc(0)
  socket.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c])
    for (;;) {
      if (buf.length < 2) return
      const op = buf[0]! & 0x0f
      let len = buf[1]! & 0x7f
      let off = 2
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4 }
      const masked = (buf[1]! & 0x80) !== 0
      const need = off + (masked ? 4 : 0) + len
      if (buf.length < need) return
      const mask = masked ? buf.subarray(off, off + 4) : undefined
      const payload = Buffer.from(buf.subarray(need - len, need))
      if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!
      buf = buf.subarray(need)
      if (op === 8) return void socket.end(Buffer.from([0x88, 0]))
      if (op !== 1) continue
      const out = Buffer.from(`${name}: ${payload.toString()}`)
      const head = out.length < 126 ? Buffer.from([0x81, out.length]) : Buffer.from([0x81, 126, out.length >> 8, out.length & 0xff])
      socket.write(Buffer.concat([head, out]))
    }
  })
  socket.on('error', () => undefined)
}
