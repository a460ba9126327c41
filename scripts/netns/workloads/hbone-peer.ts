// A hostile HBONE peer for the end-to-end tests: a "host" holding a valid workload certificate
// that misuses an HBONE server (TLS 1.3 mTLS, ALPN h2, HTTP/2 CONNECT) in one of several ways,
// then prints ONE JSON line with what it did and what the server answered. Progress goes to
// stderr. Every mode is bounded by counts and by durationMs; every socket is closed before the
// process exits 0 (2 with the usage for a bad spec).
//
//   node hbone-peer.ts '<json spec>'      (the spec and result are described in USAGE below)
import { readFileSync } from 'node:fs'
import http2, { type ClientHttp2Session, type ClientHttp2Stream, type IncomingHttpHeaders, type Settings } from 'node:http2'
import { connect as tcpConnect, createServer, type AddressInfo, type Socket } from 'node:net'
import { connect as tlsConnect, createSecureContext, type SecureContext, type TLSSocket } from 'node:tls'
import type { EventEmitter } from 'node:events'
import { serverName } from '../../../certs/spiffe.ts'

const USAGE = `usage: node hbone-peer.ts '<json spec>'
common: host, port (the HBONE server); cert, key[, chain] (PEM files; the chain may also follow the cert);
  servername (TLS SNI) or expected (the destination's SPIFFE ID: SNI = serverName(expected));
  authority ("ip:port", the CONNECT target); mode; durationMs (the whole run, default 30000);
  timeoutMs (a handshake, a CONNECT answer, a stream's end; default 5000)
modes (defaults in parentheses; + the mode's own result fields):
  drop            connections(1) x streams(1) CONNECTs; wait for the answers [readUntilEnd: and the
                  server's END_STREAM]; wait holdMs|hold(0); destroy the sockets (no GOAWAY, no RST_STREAM)
                  + ended, bytesRead
  churn           rounds(3) x drop, holdMs(1000)                        + rounds, ended, bytesRead
  bogus-authority streams(100) CONNECTs in all, :authority of authoritySize(3000) bytes, over
                  connections(1) sessions, concurrency(100) in flight each; reconnect(false)
                  + authoritySize, unsent
  no-read         streams(10) CONNECTs on one session with 2^31-1 windows; send(1024) bytes on each,
                  never read; hold holdMs(1000); then cancel and GOAWAY, or drop: true   + got200, sent
  rapid-reset     for durationMs, connections(1) reconnecting sessions of CONNECT + RST_STREAM(CANCEL),
                  <= 100 open per session                               + resetsSent
  idle-tcp        connections(1) plain TCP connections held holdMs(1000), sending nothing
                  + closedByServer, bytesReceived, closeMs {min, median, max}
  silent-hello    idle-tcp, but each first sends one real TLS 1.3 ClientHello
                  + the same, helloBytes, replies {handshake|alert: n}
  ok              streams(10) sequential CONNECTs: write line("hbone-peer ok") + " <i>\\n", read bytes
                  (default the line's length: the echo) or to END_STREAM, end our side
                  + successes, failures, latencyMs {p50, p99}
result (one JSON line): {mode, connections, connectFailures {refused|reset|handshake|timeout|alpn: n},
  refusedConnections, sessionsEnded (by the server), stalledSessions, bytesWritten (HTTP/2 bytes),
  streamsOpened, status {"200": n}, resets (by the server), resetsByCode {CODE: n}, goaways {CODE: n},
  errors {code: n}, ms, ...the mode's fields}`

const MODES = ['drop', 'churn', 'bogus-authority', 'no-read', 'rapid-reset', 'idle-tcp', 'silent-hello', 'ok'] as const
type Mode = (typeof MODES)[number]

interface Spec {
  host: string
  port: number
  mode: Mode
  cert?: string
  key?: string
  chain?: string
  servername?: string
  expected?: string
  authority?: string
  durationMs?: number
  timeoutMs?: number
  connections?: number
  streams?: number
  readUntilEnd?: boolean
  hold?: number
  holdMs?: number
  rounds?: number
  authoritySize?: number
  concurrency?: number
  reconnect?: boolean
  send?: number
  drop?: boolean
  line?: string
  bytes?: number
}

// RFC 9113 §7 error codes, by value.
const CODES = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR',
  'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED']
const codeName = (code: number): string => CODES[code] ?? String(code)
const { NGHTTP2_CANCEL } = http2.constants

// ---- the spec ----

function usage(problem: string): never {
  process.stderr.write(`hbone-peer: ${problem}\n${USAGE}\n`)
  process.exit(2)
}

function parseSpec(arg: string | undefined): Spec {
  if (!arg) usage('no spec')
  let spec: Spec
  try {
    spec = JSON.parse(arg) as Spec
  } catch (err) {
    usage(`the spec is not JSON: ${(err as Error).message}`)
  }
  if (typeof spec !== 'object' || spec === null) usage('the spec is not a JSON object')
  if (typeof spec.host !== 'string' || !Number.isInteger(spec.port)) usage('host and port are required')
  if (!MODES.includes(spec.mode)) usage(`mode must be one of ${MODES.join(', ')}`)
  if (spec.mode !== 'idle-tcp' && spec.servername === undefined && (spec.expected === undefined || !serverName(spec.expected))) usage('servername, or expected as a workload SPIFFE ID, is required')
  if (!['idle-tcp', 'silent-hello'].includes(spec.mode) && (!spec.cert || !spec.key)) usage('cert and key are required')
  if (['drop', 'churn', 'no-read', 'rapid-reset', 'ok'].includes(spec.mode) && !spec.authority) usage('authority is required')
  return spec
}

const spec = parseSpec(process.argv[2])
const started = Date.now()
const deadline = started + (spec.durationMs ?? 30_000)
const timeoutMs = spec.timeoutMs ?? 5000
const connections = spec.connections ?? 1
const sni = spec.servername ?? serverName(spec.expected ?? '')

// ---- shared counting and bookkeeping ----

const bump = (m: Record<string, number>, key: string | number): void => { m[key] = (m[key] ?? 0) + 1 }
const out = {
  mode: spec.mode,
  connections: 0,
  connectFailures: {} as Record<string, number>,
  refusedConnections: 0,
  sessionsEnded: 0,
  stalledSessions: 0,
  bytesWritten: 0,
  streamsOpened: 0,
  status: {} as Record<string, number>,
  resets: 0,
  resetsByCode: {} as Record<string, number>,
  goaways: {} as Record<string, number>,
  errors: {} as Record<string, number>,
  ms: 0,
}
const errorCode = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err as Error).message
const progress = (msg: string): void => { process.stderr.write(`hbone-peer ${spec.mode}: ${msg}\n`) }

/** Every socket still open, destroyed before exiting. */
const live = new Set<Socket>()
function track<S extends Socket>(socket: S): S {
  live.add(socket)
  socket.on('error', () => undefined)
  socket.once('close', () => live.delete(socket))
  return socket
}

/** Time left in the run, at most `ms`. */
const left = (ms = Infinity): number => Math.max(0, Math.min(ms, deadline - Date.now()))
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, left(ms)))
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)

/** The first of `events` on `e`, or 'timeout' after `ms` (bounded by the run's time). */
function first(e: EventEmitter, events: readonly string[], ms: number): Promise<{ event: string; args: unknown[] }> {
  return new Promise((resolve) => {
    const handlers = events.map((name) => [name, (...args: unknown[]) => done(name, args)] as const)
    const timer = setTimeout(() => done('timeout', []), left(ms))
    function done(event: string, args: unknown[]): void {
      clearTimeout(timer)
      for (const [name, f] of handlers) e.off(name, f)
      resolve({ event, args })
    }
    for (const [name, f] of handlers) e.on(name, f)
  })
}

/** Percentiles of a list of milliseconds (q in [0, 1]); undefined for none. */
function percentile(values: number[], q: number): number | undefined {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] : undefined
}

function connectFailed(kind: string): void {
  bump(out.connectFailures, kind)
  if (kind === 'refused') out.refusedConnections++
}

function failureKind(err: NodeJS.ErrnoException): string {
  if (err.code === 'ECONNREFUSED') return 'refused'
  if (err.code === 'ECONNRESET' || err.code === 'EPIPE') return 'reset'
  if (err.code === 'ETIMEDOUT') return 'timeout'
  return 'handshake'
}

// ---- HTTP/2 sessions and CONNECT streams ----

let context: SecureContext | undefined
function secureContext(): SecureContext {
  const pem = (file: string | undefined): string => (file ? readFileSync(file, 'utf8') : '')
  context ??= createSecureContext({ cert: pem(spec.cert) + pem(spec.chain), key: pem(spec.key), minVersion: 'TLSv1.3' })
  return context
}

function tlsOptions(host: string, port: number) {
  return {
    host, port, servername: sni, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3' as const,
    ...(spec.cert ? { secureContext: secureContext() } : {}),
    // An attacker does not care who the server is.
    rejectUnauthorized: false, checkServerIdentity: () => undefined,
  }
}

interface Session {
  readonly h2: ClientHttp2Session
  readonly socket: TLSSocket
  /** We are closing it: what follows is not the server's doing. */
  ours: boolean
}

/** TLS as the spec's certificate, then HTTP/2; undefined (counted) when that fails. */
async function session(settings?: Settings): Promise<Session | undefined> {
  const socket = track(tlsConnect(tlsOptions(spec.host, spec.port)))
  socket.once('close', () => { out.bytesWritten += socket.bytesWritten })
  const tls = await first(socket, ['secureConnect', 'error', 'close'], timeoutMs)
  const failure = tls.event === 'secureConnect' ? (socket.alpnProtocol === 'h2' ? undefined : 'alpn')
    : tls.event === 'error' ? failureKind(tls.args[0] as NodeJS.ErrnoException) : tls.event === 'timeout' ? 'timeout' : 'reset'
  if (failure) {
    socket.destroy()
    connectFailed(failure)
    return undefined
  }
  const h2 = http2.connect(`https://${spec.host}:${spec.port}`, { createConnection: () => socket, ...(settings ? { settings } : {}) })
  const s: Session = { h2, socket, ours: false }
  h2.on('error', (err) => { if (!s.ours) bump(out.errors, errorCode(err)) })
  h2.on('goaway', (code: number) => bump(out.goaways, codeName(code)))
  h2.once('close', () => { if (!s.ours) out.sessionsEnded++ })
  if ((await first(h2, ['connect', 'close'], timeoutMs)).event !== 'connect') {
    drop(s)
    connectFailed('handshake')
    return undefined
  }
  out.connections++
  return s
}

const usable = (s: Session): boolean => !s.h2.closed && !s.h2.destroyed

/** Abruptly: the TCP connection goes, with no GOAWAY and no RST_STREAM. */
function drop(s: Session): void {
  s.ours = true
  s.socket.destroy()
}

/** Politely: GOAWAY, then the socket once the session closed (or timeoutMs passed). */
async function closeSession(s: Session): Promise<void> {
  s.ours = true
  if (usable(s)) s.h2.close()
  if (!s.h2.destroyed) await first(s.h2, ['close'], Math.min(timeoutMs, 1000))
  s.socket.destroy()
}

/** Streams we reset ourselves: their close is not a reset by the server. */
const cancelled = new WeakSet<ClientHttp2Stream>()
function cancel(req: ClientHttp2Stream): void {
  cancelled.add(req)
  if (!req.closed) req.close(NGHTTP2_CANCEL)
}

/** Sends one CONNECT (our side stays open) and counts its answer, errors and a server reset. */
function connectStream(s: Session, authority: string): ClientHttp2Stream | undefined {
  let req: ClientHttp2Stream
  try {
    req = s.h2.request({ ':method': 'CONNECT', ':authority': authority }, { endStream: false })
  } catch (err) {
    bump(out.errors, errorCode(err))
    return undefined
  }
  out.streamsOpened++
  req.on('response', (headers: IncomingHttpHeaders) => bump(out.status, String(headers[':status'])))
  req.on('error', (err) => { if (!s.ours) bump(out.errors, errorCode(err)) })
  req.once('close', () => {
    if (s.ours || cancelled.has(req) || !req.rstCode) return
    out.resets++
    bump(out.resetsByCode, codeName(req.rstCode))
  })
  return req
}

const statusOf = (answer: { event: string; args: unknown[] }): number | undefined =>
  answer.event === 'response' ? Number((answer.args[0] as IncomingHttpHeaders)[':status']) : undefined

/**
 * Keeps up to `limit` streams from `open` in flight on `s` (fewer if the server allows fewer)
 * while `budget.left` grants more. Resolves when the budget is spent and every stream closed,
 * when the session ends or refuses a new stream, or when the run's time is up. Also when no
 * stream closed for `stallMs`: a session the server killed is not always noticed by node's
 * client (after a burst of resets it has been seen to emit neither 'goaway' nor 'close').
 */
function pump(s: Session, limit: number, stallMs: number, budget: { left: number }, open: (s: Session) => ClientHttp2Stream | undefined): Promise<void> {
  return new Promise((resolve) => {
    let inflight = 0
    let broken = false
    let scheduled = false
    let done = false
    const timer = setTimeout(finish, left())
    const stall = setTimeout(stalled, stallMs)
    function stalled(): void {
      out.stalledSessions++
      finish()
    }
    function finish(): void {
      done = true
      clearTimeout(timer)
      clearTimeout(stall)
      s.h2.off('close', finish)
      resolve()
    }
    function fill(): void {
      scheduled = false
      if (done) return
      stall.refresh()
      const cap = Math.min(limit, s.h2.remoteSettings?.maxConcurrentStreams ?? limit)
      while (!broken && inflight < cap && budget.left > 0 && usable(s) && left() > 0) {
        const req = open(s)
        if (!req) broken = true
        else {
          budget.left--
          inflight++
          req.once('close', () => {
            inflight--
            // Refill once per turn of the event loop, so I/O (and the deadline) keep running.
            if (!scheduled) { scheduled = true; setImmediate(fill) }
          })
        }
      }
      if (inflight === 0 && (broken || budget.left <= 0 || !usable(s) || left() === 0)) finish()
    }
    s.h2.once('close', finish)
    fill()
  })
}

// ---- the modes ----

/** One round: connections × streams CONNECTs, answered (and ended, with readUntilEnd), held, dropped. */
async function holdAndDrop(holdMs: number): Promise<{ ended: number; bytesRead: number }> {
  const sessions = (await Promise.all(range(connections).map(() => session()))).filter((s) => s !== undefined)
  let bytesRead = 0
  const waits: Array<Promise<{ event: string }>> = []
  for (const s of sessions) {
    for (let i = 0; i < (spec.streams ?? 1); i++) {
      const req = connectStream(s, spec.authority!)
      if (!req) break
      if (!spec.readUntilEnd) {
        waits.push(first(req, ['response', 'close'], timeoutMs))
        continue
      }
      req.on('data', (c: Buffer) => { bytesRead += c.length })
      waits.push(first(req, ['end', 'close'], timeoutMs))
    }
  }
  const ended = (await Promise.all(waits)).filter((w) => w.event === 'end').length
  await sleep(holdMs)
  for (const s of sessions) drop(s)
  return { ended, bytesRead }
}

async function dropMode(): Promise<object> {
  return holdAndDrop(spec.holdMs ?? spec.hold ?? 0)
}

async function churn(): Promise<object> {
  const totals = { rounds: 0, ended: 0, bytesRead: 0 }
  for (let r = 0; r < (spec.rounds ?? 3) && left() > 0; r++) {
    const round = await holdAndDrop(spec.holdMs ?? spec.hold ?? 1000)
    totals.rounds++
    totals.ended += round.ended
    totals.bytesRead += round.bytesRead
    progress(`round ${r + 1}: ${out.streamsOpened} streams so far`)
  }
  return totals
}

/**
 * A 3000-byte :authority fits HPACK's default 4096-byte table within nghttp2's 3/4 rule, so it
 * is sent once and then costs one byte per request; at 3031 bytes or more it is sent in full
 * every time.
 */
async function bogusAuthority(): Promise<object> {
  const budget = { left: spec.streams ?? 100 }
  const bogus = 'a'.repeat(spec.authoritySize ?? 3000)
  await Promise.all(range(connections).map(async () => {
    do {
      const s = await session()
      if (!s) { await sleep(100); continue }
      await pump(s, spec.concurrency ?? 100, timeoutMs, budget, (s) => connectStream(s, bogus))
      drop(s)
    } while (spec.reconnect && budget.left > 0 && left() > 0)
  }))
  return { authoritySize: bogus.length, unsent: Math.max(0, budget.left) }
}

async function noRead(): Promise<object> {
  const huge = 2 ** 31 - 1
  const s = await session({ initialWindowSize: huge })
  if (!s) return { got200: 0 }
  s.h2.setLocalWindowSize(huge)
  const payload = Buffer.alloc(spec.send ?? 1024, 'x')
  const reqs = range(spec.streams ?? 10).map(() => connectStream(s, spec.authority!)).filter((r) => r !== undefined)
  for (const req of reqs) {
    req.pause()
    req.write(payload)
  }
  const answers = await Promise.all(reqs.map((req) => first(req, ['response', 'close'], timeoutMs)))
  await sleep(spec.holdMs ?? spec.hold ?? 1000)
  if (spec.drop) drop(s)
  else {
    for (const req of reqs) cancel(req)
    await closeSession(s)
  }
  return { got200: answers.filter((a) => statusOf(a) === 200).length, sent: reqs.length * payload.length }
}

async function rapidReset(): Promise<object> {
  let resetsSent = 0
  const open = (s: Session): ClientHttp2Stream | undefined => {
    const req = connectStream(s, spec.authority!)
    if (req) {
      cancel(req)
      resetsSent++
    }
    return req
  }
  await Promise.all(range(connections).map(async () => {
    while (left() > 0) {
      const s = await session()
      if (!s) { await sleep(50); continue }
      await pump(s, 100, Math.min(timeoutMs, 500), { left: Infinity }, open)
      drop(s)
    }
  }))
  return { resetsSent }
}

/** Plain TCP connections held open, each sending `hello` first if given. */
async function idle(hello?: Buffer): Promise<object> {
  const closeMs: number[] = []
  let bytesReceived = 0
  // What each connection heard first: a TLS record type (22 handshake, 21 alert) or nothing.
  const replies: Record<string, number> = {}
  let ours = false
  const open = async (): Promise<Socket | undefined> => {
    const socket = track(tcpConnect({ host: spec.host, port: spec.port }))
    const r = await first(socket, ['connect', 'error', 'close'], timeoutMs)
    if (r.event !== 'connect') {
      socket.destroy()
      connectFailed(r.event === 'error' ? failureKind(r.args[0] as NodeJS.ErrnoException) : 'timeout')
      return undefined
    }
    out.connections++
    const at = Date.now()
    socket.once('data', (c: Buffer) => bump(replies, c[0] === 22 ? 'handshake' : c[0] === 21 ? 'alert' : String(c[0])))
    socket.on('data', (c: Buffer) => { bytesReceived += c.length })
    socket.once('close', () => { if (!ours) closeMs.push(Date.now() - at) })
    if (hello) socket.write(hello)
    return socket
  }
  const sockets = (await Promise.all(range(connections).map(open))).filter((s) => s !== undefined)
  const holdUntil = Date.now() + (spec.holdMs ?? spec.hold ?? 1000)
  while (closeMs.length < sockets.length && Date.now() < holdUntil && left() > 0) await sleep(Math.min(20, holdUntil - Date.now()))
  ours = true
  for (const s of sockets) s.destroy()
  return {
    closedByServer: closeMs.length, bytesReceived, ...(hello ? { replies } : {}),
    closeMs: { min: percentile(closeMs, 0) ?? null, median: percentile(closeMs, 0.5) ?? null, max: percentile(closeMs, 1) ?? null },
  }
}

/** The first TLS record node:tls sends with our options: a real TLS 1.3 ClientHello. */
async function captureHello(): Promise<Buffer | undefined> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const hello = new Promise<Buffer>((resolve) => server.once('connection', (c) => {
    track(c)
    let buf = Buffer.alloc(0)
    c.on('data', (chunk: Buffer) => {
      buf = Buffer.concat([buf, chunk])
      if (buf.length >= 5 && buf.length >= 5 + buf.readUInt16BE(3)) {
        resolve(buf.subarray(0, 5 + buf.readUInt16BE(3)))
        c.destroy()
      }
    })
  }))
  const client = track(tlsConnect(tlsOptions('127.0.0.1', (server.address() as AddressInfo).port)))
  const timeout = new Promise<undefined>((r) => setTimeout(r, left(2000), undefined))
  const got = await Promise.race([hello, timeout])
  client.destroy()
  server.close()
  return got
}

async function silentHello(): Promise<object> {
  const hello = await captureHello()
  if (!hello) {
    bump(out.errors, 'no ClientHello captured')
    return { helloBytes: 0 }
  }
  return { helloBytes: hello.length, ...await idle(hello) }
}

async function ok(): Promise<object> {
  const latencies: number[] = []
  let failures = 0
  let s: Session | undefined
  for (let i = 0; i < (spec.streams ?? 10) && left() > 0; i++) {
    if (!s || !usable(s)) s = await session()
    const t0 = Date.now()
    if (s && await okStream(s, `${spec.line ?? 'hbone-peer ok'} ${i}\n`)) latencies.push(Date.now() - t0)
    else failures++
  }
  if (s) await closeSession(s)
  return { successes: latencies.length, failures, latencyMs: { p50: percentile(latencies, 0.5) ?? null, p99: percentile(latencies, 0.99) ?? null } }
}

/** 200, then the line echoed (`bytes` bytes) or the server's END_STREAM; then our end. */
async function okStream(s: Session, line: string): Promise<boolean> {
  const req = connectStream(s, spec.authority!)
  if (!req) return false
  const want = spec.bytes ?? Buffer.byteLength(line)
  let got = 0
  let ended = false
  req.on('data', (c: Buffer) => {
    got += c.length
    if (got >= want) req.emit('enough')
  })
  req.once('end', () => { ended = true })
  const answer = await first(req, ['response', 'close'], timeoutMs)
  let success = statusOf(answer) === 200
  if (success) {
    req.write(line)
    if (got < want) await first(req, ['enough', 'end', 'close'], timeoutMs)
    success = got >= want
    if (!ended) req.end()
    if (!req.closed) await first(req, ['close'], timeoutMs)
  }
  cancel(req)
  return success
}

// ---- run ----

const RUN: Record<Mode, () => Promise<object>> = {
  'drop': dropMode, 'churn': churn, 'bogus-authority': bogusAuthority, 'no-read': noRead,
  'rapid-reset': rapidReset, 'idle-tcp': () => idle(), 'silent-hello': silentHello, 'ok': ok,
}

let finished = false
function finish(extra: object): void {
  if (finished) return
  finished = true
  for (const socket of live) socket.destroy()
  out.ms = Date.now() - started
  // Let the sockets' 'close' events (bytesWritten) run first.
  setTimeout(() => process.stdout.write(`${JSON.stringify({ ...out, ...extra })}\n`, () => process.exit(0)), 20)
}

// The modes end by the deadline; this is the backstop if one does not.
setTimeout(() => finish({ timedOut: true }), left() + 5000)
progress(`${spec.host}:${spec.port}${sni ? ` as SNI ${sni}` : ''}`)
RUN[spec.mode]().then(finish, (err: unknown) => {
  bump(out.errors, errorCode(err))
  progress(`failed: ${(err as Error).stack ?? String(err)}`)
  finish({ failed: true })
})
