// One request and its answer as it goes through a pipeline: the downstream side (HTTP/1.1
// request/response, or an HTTP/2 stream), the snapshot it started with (kept to the end, so a
// reload never changes a request half way), what the stages decide, and the telemetry record.
import type { IncomingMessage, ServerResponse } from 'node:http'
import type { IncomingHttpHeaders, ServerHttp2Stream } from 'node:http2'
import type { Duplex } from 'node:stream'
import type { CompiledHTTPRule, Endpoint, HeaderModifier, Snapshot } from '../../policy/snapshot.ts'
import type { Target } from '../balance/target.ts'
import { STATUS_CODES } from '../net/node-http.ts'
import type { ResponseFlag } from '../telemetry/connection.ts'
import type { RequestRecord } from '../telemetry/request.ts'
import { GRPC, grpcMessage, grpcStatusOf } from './grpc.ts'
import type { HeaderMap } from './headers.ts'
import type { ReplayBody } from './replay-body.ts'

export type Down =
  | { readonly version: '1.1'; readonly req: IncomingMessage; readonly res: ServerResponse }
  | { readonly version: '2'; readonly stream: ServerHttp2Stream; readonly headers: IncomingHttpHeaders }
  /** An HTTP/1.1 Upgrade (WebSocket): answered on the raw connection, then a tunnel. */
  | { readonly version: 'upgrade'; readonly req: IncomingMessage; readonly socket: Duplex; readonly head: Buffer }

/** Why a try got no response. connect and refused mean the upstream never saw the request. */
export type TryFailure = 'connect' | 'refused' | 'reset' | 'timeout'

/** What a try ended with, as the retry stage judges it. */
export type TryOutcome =
  | { readonly status: number; readonly grpcStatus?: number }
  | { readonly failure: TryFailure }

export interface Retrier {
  /** True: this outcome is retried, and the caller abandons the try without answering. */
  again(outcome: TryOutcome): boolean
}

export interface Exchange<C> {
  readonly down: Down
  /** Per-connection facts (source workload, or peer and destination workload). */
  readonly conn: C
  readonly snapshot: Snapshot
  readonly grpc: boolean
  readonly record: RequestRecord
  /** performance.now() at arrival. */
  readonly startedAt: number
  method: string
  authority: string
  /** Without the query. */
  path: string
  /** Without '?'; '' when none. */
  query: string
  /** What goes upstream: end-to-end fields only (headers.ts), names lowercase. */
  readonly headers: HeaderMap
  /** Bytes of the request body read so far, and of the response body written. */
  requestBytes: number
  responseBytes: number
  flags: ResponseFlag[]
  rule?: CompiledHTTPRule
  /** Applied to the response before it goes to the client. */
  responseModifier?: HeaderModifier
  target?: Target
  endpoint?: Endpoint
  /** Endpoints already tried for this request. */
  readonly tried: Set<Endpoint>
  /** The try being sent, from 1: `x-hostmesh-attempt-count` upstream. */
  attempt: number
  /** The request body when it may be sent more than once (a retry, a mirror). */
  body?: ReplayBody
  /** Set by the retry stage: whether a try's outcome is retried (the try is then abandoned). */
  retry?: Retrier
  /** The current try's own timeout (`backendRequest`) fired before its response started. */
  tryTimedOut: boolean
  /** The client went away: nothing more is sent. */
  aborted: boolean
  /** The route's timeout fired (timeouts.ts): the client has its 504, or its reset. */
  timedOut: boolean
  /** Cancels the upstream request in flight (its stream reset, so the server sees it); set by forward.ts. */
  cancelUpstream?: () => void
  /** The status sent to the client (0 until then), and the gRPC status when there was one. */
  status: number
  grpcStatus?: number
  /** Why the exchange failed, for the access log. */
  error?: string
}

/** The path and query of a request target; an absolute-form target keeps only them. */
export function splitTarget(target: string): { path: string; query: string } {
  let t = target
  if (t.charCodeAt(0) !== 47 /* '/' */) {
    const scheme = t.indexOf('://')
    if (scheme > 0) {
      // The authority ends at the first '/' or '?': a '/' in the query is not the path's.
      let end = scheme + 3
      while (end < t.length && t.charCodeAt(end) !== 47 && t.charCodeAt(end) !== 63 /* '?' */) end++
      t = end === t.length ? '/' : t.charCodeAt(end) === 47 ? t.slice(end) : `/${t.slice(end)}`
    }
  }
  const q = t.indexOf('?')
  return q < 0 ? { path: t, query: '' } : { path: t.slice(0, q), query: t.slice(q + 1) }
}

export interface LocalReply {
  readonly status: number
  readonly flag?: ResponseFlag
  /** Body text for HTTP; grpc-message for gRPC. */
  readonly message?: string
  readonly headers?: HeaderMap
}

/**
 * hostmesh answers the request itself (no route, denied, upstream failed...). gRPC clients
 * get a trailers-only response with the matching grpc-status. Does nothing once a response
 * has started: then the only honest signal left is a reset (see reset()).
 */
export function reply<C>(x: Exchange<C>, r: LocalReply): void {
  if (r.flag && !x.flags.includes(r.flag)) x.flags.push(r.flag)
  if (x.aborted || started(x)) return
  const message = r.message ?? ''
  const headers: HeaderMap = { ...r.headers }
  if (x.grpc) {
    const code = grpcStatusOf(r.status, r.flag)
    Object.assign(headers, { 'content-type': 'application/grpc', 'grpc-status': String(code === GRPC.OK ? GRPC.UNKNOWN : code), 'grpc-message': grpcMessage(message) })
    return send(x, 200, headers, '', code)
  }
  headers['content-type'] = 'text/plain'
  const body = message ? `${message}\n` : ''
  headers['content-length'] = String(Buffer.byteLength(body))
  send(x, r.status, headers, body)
}

function send<C>(x: Exchange<C>, status: number, headers: HeaderMap, body: string, grpcStatus?: number): void {
  const d = x.down
  x.responseBytes += Buffer.byteLength(body)
  x.status = status
  if (grpcStatus !== undefined) x.grpcStatus = grpcStatus
  if (d.version === '1.1') {
    d.res.writeHead(status, headers)
    d.res.end(body)
  } else if (d.version === 'upgrade') {
    let head = `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\nconnection: close\r\n`
    for (const [k, v] of Object.entries(headers)) for (const one of Array.isArray(v) ? v : [v]) head += `${k}: ${one}\r\n`
    d.socket.end(`${head}\r\n${body}`)
  } else if (!d.stream.destroyed) {
    d.stream.respond({ ':status': status, ...headers }, { endStream: body.length === 0 })
    if (body.length > 0) d.stream.end(body)
  }
}

/** A response (or its head) has gone to the client, or cannot any more. */
export function started<C>(x: Exchange<C>): boolean {
  const d = x.down
  if (d.version === 'upgrade') return x.status !== 0 || d.socket.writableEnded || d.socket.destroyed
  return d.version === '1.1' ? d.res.headersSent : d.stream.headersSent || d.stream.destroyed
}
