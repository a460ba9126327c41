// Turns a parsed downstream request into an Exchange, the same way on both hosts: the snapshot
// it will keep, the request's parts, the end-to-end headers with the forwarding fields and ids
// added, and a telemetry record that is finished exactly once, when the downstream side of the
// exchange closes (whether the response completed, failed, or the client went away).
import type { Snapshot } from '../../policy/snapshot.ts'
import type { RequestStart, RequestTelemetry } from '../telemetry/request.ts'
import { reply, splitTarget, type Down, type Exchange } from './exchange.ts'
import { watchDownstream } from './forward.ts'
import { isGrpc } from './grpc.ts'
import { endToEnd, first, forwarded, requestIds } from './headers.ts'
import type { L7Limits } from './limits.ts'

export interface Admitted<C> {
  readonly snapshot: () => Snapshot | undefined
  readonly telemetry: RequestTelemetry
  readonly traceparent: boolean
  readonly limits: L7Limits
  /** The record's fixed facts for this connection (reporter, source, destination). */
  readonly start: (snap: Snapshot) => Omit<RequestStart, 'protocol' | 'method' | 'authority' | 'path' | 'requestId' | 'traceId' | 'startedAt'>
  /** Appended to x-forwarded-for; absent when the client is another hostmesh. */
  readonly forwardedFor: string | undefined
}

export function admit<C>(conn: C, down: Down, a: Admitted<C>): Exchange<C> | undefined {
  const startedAt = performance.now()
  const incoming = down.version === '2' ? down.headers : down.req.headers
  const method = down.version === '2' ? String(incoming[':method'] ?? '') : down.req.method ?? ''
  const snap = a.snapshot()
  // HTTP/1.0 may leave Host out (RFC 9112 §3.2 asks it of HTTP/1.1 only): the request is for
  // the address the connection was made to (Envoy's default_host_for_http_10, here automatic).
  const http10 = down.version !== '2' && down.req.httpVersionMinor === 0 && incoming.host === undefined
  const authority = String((down.version === '2' ? incoming[':authority'] ?? incoming.host : incoming.host) ?? (http10 && snap ? a.start(snap).dst.address ?? '' : ''))
  const { path, query } = splitTarget(down.version === '2' ? String(incoming[':path'] ?? '/') : down.req.url ?? '/')
  const headers = endToEnd(incoming)
  forwarded(headers, a.forwardedFor)
  const ids = requestIds(headers, a.traceparent)
  const grpc = down.version === '2' && isGrpc(incoming['content-type'])
  const x: Exchange<C> = {
    down, conn, snapshot: snap!, grpc, startedAt,
    record: a.telemetry.begin({
      ...(snap ? a.start(snap) : { reporter: 'source', listener: 'outbound', src: {}, dst: {}, security: 'none' }),
      protocol: grpc ? 'grpc' : 'http', method, authority, path, requestId: ids.requestId, ...(ids.traceId ? { traceId: ids.traceId } : {}), startedAt,
    }),
    method, authority, path, query, headers,
    requestBytes: 0, responseBytes: 0, flags: [], tried: new Set(), attempt: 0, tryTimedOut: false, aborted: false, timedOut: false, status: 0,
  }
  // On the next tick: the other 'close' listeners (forward.ts's, which flags a client that left
  // mid-response DC) run first, whatever order they were added in.
  const finish = (): void => process.nextTick(() => x.record.finish({
    status: x.status, ...(x.grpcStatus !== undefined ? { grpcStatus: x.grpcStatus } : {}),
    flags: x.status === 0 && !x.flags.includes('DC') ? [...x.flags, 'DC'] : x.flags,
    requestBytes: x.requestBytes, responseBytes: x.responseBytes, ...(x.error ? { error: x.error } : {}),
  }))
  watchDownstream(x)
  if (down.version === '1.1') down.res.once('close', finish)
  else if (down.version === '2') down.stream.once('close', finish)
  else down.socket.once('close', finish)
  if (!snap) {
    reply(x, { status: 503, flag: 'NR', message: 'no policy loaded yet' })
    return undefined
  }
  // HTTP/2's header limits are in bytes (SETTINGS_MAX_HEADER_LIST_SIZE); the count is ours.
  if (down.version === '2' && Object.keys(incoming).length > a.limits.maxRequestHeaders + 4) {
    reply(x, { status: 431, message: `more than ${a.limits.maxRequestHeaders} request headers` })
    return undefined
  }
  if (!authority || first(incoming.host) !== undefined && down.version === '2' && incoming[':authority'] !== undefined && first(incoming.host) !== incoming[':authority']) {
    reply(x, { status: 400, message: 'missing or conflicting authority' })
    return undefined
  }
  if (method === 'CONNECT') {
    reply(x, { status: 405, message: 'CONNECT is not proxied on a mesh HTTP port' })
    return undefined
  }
  return x
}
