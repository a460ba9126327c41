// The HTTP/1.1 server both pipelines parse untrusted clients with. It never listens: the
// daemon hands it each accepted connection (a TCP socket, or an HBONE CONNECT stream, any
// Duplex) with `server.emit('connection', socket)`.
//
// A request is passed on only when node's strict parser (llhttp) accepted its head and the
// guard (http1-guard.ts) found nothing wrong with it. Anything else is refused: a minimal
// `HTTP/1.1 <status>` with `Connection: close` when no response has started on the connection,
// then the connection closes (after up to a second for the client to read the answer, Envoy's
// delayed_close_timeout; RFC 9112 §9.6). Limits: the head's size and header count (431), the
// time to receive a head (408). A whole request is never timed, so long uploads and streams
// are not cut; an idle connection closes after idleTimeoutMs.
//
// Every handler this server emits ('request', 'checkContinue', 'upgrade') sees only requests
// that passed the guard, whoever registered it. 'request' and 'checkContinue' handlers run on
// the next turn of the event loop, once node has parsed all the bytes that came with the head:
// a request whose body framing is broken in those bytes (the usual smuggling payload) is
// refused without reaching a handler. (A microtask is too early: node runs them between the
// parser's callbacks on a TCP socket.) A framing error arriving later aborts the request the
// handler has (req emits 'error') and cuts the connection.
// CONNECT is answered 405: the mesh does not tunnel through HTTP ports.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import type { Duplex } from 'node:stream'
import http from '../net/node-http.ts'
import { clientErrorRejection, rejectionResponse, type ClientError, type Rejection } from './client-error.ts'
import { checkRequestHead } from './http1-guard.ts'
import type { L7Limits } from './limits.ts'

export interface Http1ServerEvents {
  /**
   * Once per refused connection, with its status (sent unless a response had already started
   * on the connection, which is then cut) and a short reason (see Rejection). A client that
   * reset or closed mid-request is not a refusal and is not reported. The caller counts and logs.
   */
  rejected?(socket: Duplex, status: number, reason: string): void
}

/** How long a refused connection stays open for the client to read the answer (Envoy's delayed_close_timeout). */
const LINGER_MS = 1000

const CONNECT: Rejection = { status: 405, reason: 'CONNECT is not proxied on a mesh HTTP port' }

/** node keeps the response being written on the socket (`_httpMessage`, as in its own clientError default). */
type Connection = Duplex & { _httpMessage?: ServerResponse | null }

export function createHttp1Server(
  limits: L7Limits,
  onRequest: (req: IncomingMessage, res: ServerResponse) => void,
  events: Http1ServerEvents = {},
): Server {
  const server = new GuardedServer(limits, events)
  server.on('request', onRequest)
  return server
}

class GuardedServer extends http.Server {
  readonly #limits: L7Limits
  readonly #events: Http1ServerEvents
  readonly #refused = new WeakSet<Duplex>()
  /** Responses whose handler has run: a refusal can no longer write on their connection. */
  readonly #handed = new WeakSet<ServerResponse>()

  constructor(limits: L7Limits, events: Http1ServerEvents) {
    super({
      insecureHTTPParser: false,
      maxHeaderSize: limits.maxRequestHeadersBytes,
      // The guard answers a missing Host, so that it is reported like every other refusal.
      requireHostHeader: false,
      headersTimeout: limits.headerTimeoutMs,
      // node's requestTimeout covers the body too, which would cut long uploads and streams.
      requestTimeout: 0,
      keepAliveTimeout: limits.idleTimeoutMs,
      // How often node looks for heads past their deadline: a 408 comes at most this late.
      connectionsCheckingInterval: Math.min(1000, Math.max(25, Math.floor(limits.headerTimeoutMs / 4))),
    })
    this.#limits = limits
    this.#events = events
    // node truncates rawHeaders past maxHeadersCount (node 24 rejects past it): one more than
    // the limit lets the guard see and refuse the first header too many.
    this.maxHeadersCount = limits.maxRequestHeaders + 1
    this.timeout = limits.idleTimeoutMs
    // node emits 'connect' only when someone listens (and otherwise drops the socket unanswered).
    this.on('connect', () => undefined)
    // node starts the checker for header deadlines when a server starts listening; this one
    // never listens. close() stops it.
    this.emit('listening')
  }

  override emit(event: string, ...args: unknown[]): boolean {
    switch (event) {
      case 'request':
      case 'checkContinue':
        return this.#request(event, args[0] as IncomingMessage, args[1] as ServerResponse)
      case 'upgrade':
      case 'connect':
        return this.#takeover(event, args[0] as IncomingMessage, args[1] as Duplex, args[2] as Buffer)
      case 'clientError':
        return this.#clientError(args[0] as ClientError, args[1] as Duplex)
      default:
        return super.emit(event, ...args)
    }
  }

  #request(event: 'request' | 'checkContinue', req: IncomingMessage, res: ServerResponse): boolean {
    const socket: Duplex = req.socket
    // Bodies of refused requests are read and dropped, so that the client's FIN gets through.
    // A request pipelined behind a refused one goes with its connection.
    if (this.#refused.has(socket)) {
      req.resume()
      return true
    }
    const refusal = checkRequestHead(req, this.#limits)
    if (refusal) {
      req.resume()
      return this.#refuse(socket, refusal)
    }
    setImmediate(() => {
      if (this.#refused.has(socket) || socket.destroyed) return
      this.#handed.add(res)
      super.emit(event, req, res)
    })
    return true
  }

  /** An Upgrade or CONNECT request: node has let go of the socket, and its bytes are raw from here. */
  #takeover(event: 'upgrade' | 'connect', req: IncomingMessage, socket: Duplex, head: Buffer): boolean {
    // node removed its error listener: a reset must not become an uncaught error.
    socket.on('error', () => undefined)
    if (this.#refused.has(socket)) {
      socket.destroy()
      return true
    }
    const refusal = event === 'connect' ? CONNECT : checkRequestHead(req, this.#limits)
    if (refusal) return this.#refuse(socket, refusal)
    return super.emit(event, req, socket, head)
  }

  #clientError(err: ClientError, socket: Duplex): boolean {
    const refusal = clientErrorRejection(err)
    if (refusal) this.#refuse(socket, refusal)
    else socket.destroy()
    return true
  }

  #refuse(socket: Connection, refusal: Rejection): boolean {
    if (this.#refused.has(socket)) return true
    this.#refused.add(socket)
    this.#events.rejected?.(socket, refusal.status, refusal.reason)
    // A response already started (or a handler that may start one) must not be interleaved
    // with ours: the connection is cut instead, as node does.
    const current = socket._httpMessage
    if (!socket.writable || (current && (current.headersSent || this.#handed.has(current)))) {
      socket.destroy()
      return true
    }
    socket.end(rejectionResponse(refusal.status))
    const timer = setTimeout(() => socket.destroy(), LINGER_MS).unref()
    socket.once('close', () => clearTimeout(timer))
    // Read (and drop) what the client still sends, so its FIN is seen and closing does not
    // reset the connection under an unread answer.
    socket.resume()
    return true
  }
}
