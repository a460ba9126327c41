// Header handling every proxied request and response gets, as RFC 9110 §7.6 asks of a proxy:
// hop-by-hop fields (the fixed list, and those the Connection field names) stop here, and the
// forwarding fields are added. Names are lowercase throughout (node gives them so).
import { randomFillSync, randomUUID } from 'node:crypto'
import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http'

export type HeaderMap = Record<string, string | string[]>

/** RFC 9110 §7.6.1, plus the HTTP/2 pseudo-headers and hostmesh's own per-hop fields. */
const HOP_BY_HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'upgrade', 'trailer', 'http2-settings', 'host'])

/**
 * The end-to-end fields of `incoming`, as a fresh object: pseudo-headers, hop-by-hop fields
 * and those named in Connection removed. `te: trailers` survives (gRPC needs it end to end
 * on HTTP/2). `host` is dropped: the authority travels separately.
 */
export function endToEnd(incoming: IncomingHttpHeaders): HeaderMap {
  const out: HeaderMap = {}
  const conn = incoming.connection
  const named = conn ? new Set(String(conn).toLowerCase().split(',').map((s) => s.trim()).filter(Boolean)) : undefined
  for (const name in incoming) {
    const v = incoming[name]
    if (v === undefined || name.charCodeAt(0) === 58 /* ':' */ || HOP_BY_HOP.has(name) || named?.has(name)) continue
    out[name] = v
  }
  if (incoming.te !== undefined && /(^|,)\s*trailers\s*(;|,|$)/i.test(String(incoming.te))) out.te = 'trailers'
  return out
}

/** Response fields for the client: hop-by-hop removed; HTTP/2 has no `connection` at all. */
export function responseHeaders(incoming: IncomingHttpHeaders): OutgoingHttpHeaders {
  const out = endToEnd(incoming)
  delete out.te
  return out
}

/** Appends `address` to x-forwarded-for, and sets x-forwarded-proto when absent. */
export function forwarded(h: HeaderMap, address: string | undefined): void {
  if (address) {
    const xff = h['x-forwarded-for']
    h['x-forwarded-for'] = xff === undefined ? address : `${Array.isArray(xff) ? xff.join(', ') : xff}, ${address}`
  }
  if (h['x-forwarded-proto'] === undefined) h['x-forwarded-proto'] = 'http'
}

const TRACEPARENT = /^[0-9a-f]{2}-([0-9a-f]{32})-[0-9a-f]{16}-[0-9a-f]{2}$/

/**
 * x-request-id and W3C traceparent: kept when the client sent valid ones, created when absent
 * (traceparent only when `createTrace`). Returns the ids for the access log.
 */
export function requestIds(h: HeaderMap, createTrace: boolean): { requestId: string; traceId?: string } {
  let requestId = h['x-request-id']
  if (typeof requestId !== 'string' || requestId.length === 0 || requestId.length > 128) requestId = h['x-request-id'] = randomUUID()
  const tp = h.traceparent
  const m = typeof tp === 'string' ? TRACEPARENT.exec(tp) : null
  if (m) return { requestId, traceId: m[1]! }
  if (tp !== undefined) delete h.traceparent // malformed: W3C says restart the trace
  if (!createTrace) return { requestId }
  const ids = randomIds()
  h.traceparent = `00-${ids.traceId}-${ids.spanId}-01`
  return { requestId, traceId: ids.traceId }
}

// Random bytes for trace and span ids come from one pre-filled pool, refilled when used up:
// one randomBytes() call per request costs a syscall and an allocation (randomUUID does the same).
const POOL = Buffer.alloc(24 * 256)
let poolAt = POOL.length

function randomIds(): { traceId: string; spanId: string } {
  if (poolAt + 24 > POOL.length) {
    randomFillSync(POOL)
    poolAt = 0
  }
  const at = poolAt
  poolAt += 24
  return { traceId: POOL.toString('hex', at, at + 16), spanId: POOL.toString('hex', at + 16, at + 24) }
}

/** The header's single value (the first, if repeated). */
export function first(v: string | string[] | undefined): string | undefined {
  return Array.isArray(v) ? v[0] : v
}
