// The front of both pipelines: takes an accepted connection (a TCP socket, or an HBONE
// CONNECT stream), tells which HTTP it speaks, and hands each request to the pipeline with the
// connection's facts. `http` ports: HTTP/2 with prior knowledge when the first bytes are the
// HTTP/2 connection preface, HTTP/1.1 otherwise (the HTTP/1.1 parser answers 400 to bytes that
// are not HTTP). `http2` / `grpc` ports: h2c only; other bytes get 400. Connections are kept
// so that a drain can ask each to end: HTTP/1.1 with `Connection: close` on its next
// response, HTTP/2 with GOAWAY. An idle HTTP/1.1 connection is closed only once it has stayed
// idle for DRAIN_IDLE_MS: closing it at once races a request the client is sending on it (the
// client sees the close, not an answer: the soak's restart scenario lost 2 of 2,200 requests
// so), while a client that is busy sends its next request within that time and gets
// `Connection: close` on the answer.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import http2, { type IncomingHttpHeaders, type ServerHttp2Session, type ServerHttp2Stream } from 'node:http2'
import { Socket } from 'node:net'
import { Duplex } from 'node:stream'
import type { Protocol } from '../../policy/snapshot.ts'
import { createHttp1Server } from './http1-server.ts'
import type { L7Limits } from './limits.ts'

const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1')
/** While draining, an idle HTTP/1.1 connection is closed after this long without a request. */
export const DRAIN_IDLE_MS = 1000

export interface FrontHandlers<C> {
  request(req: IncomingMessage, res: ServerResponse, ctx: C): void
  upgrade(req: IncomingMessage, socket: Duplex, head: Buffer, ctx: C): void
  stream(stream: ServerHttp2Stream, headers: IncomingHttpHeaders, ctx: C): void
  /** A connection or request refused before the pipeline (bad bytes, limits, timeouts). */
  rejected(status: number, reason: string, ctx: C | undefined): void
  /** An HTTP/2 session ended by an error: a protocol violation, or a flood node's guards caught. */
  sessionFailed(err: Error, ctx: C): void
}

interface Conn {
  readonly socket: Duplex
  session?: ServerHttp2Session
  /** HTTP/1.1 responses in flight on it. */
  readonly responses: Set<ServerResponse>
  /** HTTP/1.1 requests it has carried. */
  requests: number
}

export class HttpFront<C> {
  readonly #h1: Server
  readonly #limits: L7Limits
  readonly #handlers: FrontHandlers<C>
  readonly #ctx = new WeakMap<object, C>()
  readonly #conns = new Map<Duplex, Conn>()
  #draining = false

  constructor(limits: L7Limits, handlers: FrontHandlers<C>) {
    this.#limits = limits
    this.#handlers = handlers
    const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
      const conn = this.#conns.get(req.socket)
      const ctx = this.#ctx.get(req.socket)
      if (!conn || ctx === undefined) return void req.socket.destroy()
      conn.requests++
      conn.responses.add(res)
      res.once('close', () => {
        conn.responses.delete(res)
        if (this.#draining && conn.responses.size === 0) req.socket.end()
      })
      if (this.#draining) res.shouldKeepAlive = false
      handlers.request(req, res, ctx)
    }
    this.#h1 = createHttp1Server(limits, onRequest, {
      rejected: (socket, status, reason) => handlers.rejected(status, reason, this.#ctx.get(socket)),
    })
    // Expect: 100-continue goes upstream as it came; the upstream's 100 is relayed (forward.ts).
    this.#h1.on('checkContinue', onRequest)
    this.#h1.on('upgrade', (req: IncomingMessage, socket: Duplex, head: Buffer) => {
      const ctx = this.#ctx.get(socket)
      if (ctx === undefined) return void socket.destroy()
      handlers.upgrade(req, socket, head, ctx)
    })
  }

  /** Open downstream connections. */
  get connections(): number {
    return this.#conns.size
  }

  serve(socket: Duplex, ctx: C, protocol: Protocol): void {
    const conn: Conn = { socket, responses: new Set(), requests: 0 }
    this.#conns.set(socket, conn)
    this.#ctx.set(socket, ctx)
    socket.once('close', () => this.#conns.delete(socket))
    socket.on('error', () => undefined)
    // As Envoy does. With Nagle's algorithm, the small frames HTTP/2 writes from JS (the replay
    // below: WINDOW_UPDATEs) wait for delayed ACKs: a 3 MB upload took 3.3 s instead of 25 ms.
    if (socket instanceof Socket) socket.setNoDelay(true)
    const timer = setTimeout(() => {
      this.#handlers.rejected(408, 'no request within the header timeout', ctx)
      socket.destroy()
    }, this.#limits.headerTimeoutMs)
    let seen: Buffer = Buffer.alloc(0)
    const onData = (chunk: Buffer): void => {
      seen = seen.length === 0 ? chunk : Buffer.concat([seen, chunk])
      const n = Math.min(seen.length, PREFACE.length)
      const prefaceSoFar = seen.subarray(0, n).equals(PREFACE.subarray(0, n))
      if (prefaceSoFar && seen.length < PREFACE.length) return // wait for the rest of the preface
      socket.off('data', onData)
      socket.pause()
      clearTimeout(timer)
      if (prefaceSoFar) return this.#h2(conn, seen, ctx)
      if (protocol !== 'http') return this.#refuse(socket, ctx, 'not HTTP/2 on an HTTP/2 port')
      socket.unshift(seen)
      this.#h1.emit('connection', socket)
      socket.resume()
    }
    socket.on('data', onData)
  }

  /** Ends every connection gracefully: see the file comment. */
  drain(): void {
    this.#draining = true
    for (const c of this.#conns.values()) {
      if (c.session) c.session.close()
      else if (c.responses.size === 0) this.#endIfStillIdle(c)
      // Not sent yet: node then says `Connection: close` and closes after this response.
      else for (const res of c.responses) if (!res.headersSent) res.shouldKeepAlive = false
    }
  }

  /** A request on it meanwhile is answered with `Connection: close`, and the connection ends after that answer instead. */
  #endIfStillIdle(c: Conn): void {
    const seen = c.requests
    setTimeout(() => {
      if (c.requests === seen && c.responses.size === 0) c.socket.end()
    }, DRAIN_IDLE_MS).unref()
  }

  destroy(): void {
    for (const c of this.#conns.values()) {
      c.session?.destroy()
      c.socket.destroy()
    }
    this.#conns.clear()
  }

  #refuse(socket: Duplex, ctx: C, reason: string): void {
    this.#handlers.rejected(400, reason, ctx)
    socket.end('HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
    setTimeout(() => socket.destroy(), 1000).unref()
  }

  #h2(conn: Conn, seen: Buffer, ctx: C): void {
    // nghttp2 reads a TCP socket's handle directly, past bytes put back with unshift(): such a
    // socket is wrapped so the preface already read goes first. Other Duplexes are read
    // through their stream interface, where unshift() is enough.
    let io: Duplex = conn.socket
    if (io instanceof Socket) io = replay(io, seen)
    else io.unshift(seen)
    const session = http2.performServerHandshake(io, {
      maxHeaderListPairs: this.#limits.maxRequestHeaders * 2 + 8,
      maxSessionMemory: 64,
      settings: { maxHeaderListSize: this.#limits.maxRequestHeadersBytes, maxConcurrentStreams: 256, enablePush: false },
    })
    conn.session = session
    session.on('error', (err) => this.#handlers.sessionFailed(err, ctx))
    session.setTimeout(this.#limits.idleTimeoutMs, () => session.close())
    session.on('stream', (stream, headers) => {
      stream.on('error', () => undefined)
      this.#handlers.stream(stream, headers, ctx)
    })
    if (this.#draining) session.close()
    conn.socket.resume()
  }
}

/** A Duplex over `socket` whose first bytes are `head` (already read from it). */
export function replay(socket: Socket, head: Buffer): Duplex {
  const d = new Duplex({
    read() { socket.resume() },
    write(chunk: Buffer, _enc, cb) { socket.write(chunk, cb) },
    final(cb) { socket.end(); cb() },
    destroy(err, cb) {
      socket.destroy(err ?? undefined)
      cb(err)
    },
  })
  d.push(head)
  socket.on('data', (c: Buffer) => { if (!d.push(c)) socket.pause() })
  socket.once('end', () => d.push(null))
  socket.once('close', () => d.destroy())
  return d
}
