// gRPC's view of hostmesh's own answers: a gRPC client gets a status in trailers-only form,
// never an HTTP error page it cannot parse. The mapping is gRPC's HTTP-to-status table
// (doc/http-grpc-status-mapping.md), as Envoy applies it to its local replies.

export const GRPC = Object.freeze({ OK: 0, CANCELLED: 1, UNKNOWN: 2, DEADLINE_EXCEEDED: 4, NOT_FOUND: 5, PERMISSION_DENIED: 7, RESOURCE_EXHAUSTED: 8, UNIMPLEMENTED: 12, INTERNAL: 13, UNAVAILABLE: 14, UNAUTHENTICATED: 16 })

export function isGrpc(contentType: string | string[] | undefined): boolean {
  const ct = Array.isArray(contentType) ? contentType[0] : contentType
  return ct !== undefined && (ct === 'application/grpc' || ct.startsWith('application/grpc+') || ct.startsWith('application/grpc;'))
}

/** The gRPC status for an HTTP status hostmesh answers with. */
export function grpcStatusOf(httpStatus: number, flag?: string): number {
  if (flag === 'UT') return GRPC.DEADLINE_EXCEEDED
  if (flag === 'RL') return GRPC.RESOURCE_EXHAUSTED
  switch (httpStatus) {
    case 400: return GRPC.INTERNAL
    case 401: return GRPC.UNAUTHENTICATED
    case 403: return GRPC.PERMISSION_DENIED
    case 404: return GRPC.UNIMPLEMENTED
    case 429: case 502: case 503: case 504: return GRPC.UNAVAILABLE
    default: return GRPC.UNKNOWN
  }
}

/**
 * A grpc-message value, bounded: gRPC's Percent-Encoded (PROTOCOL-HTTP2.md) keeps visible
 * ASCII except '%' and encodes every other byte. Encoding more (encodeURIComponent's ':' or
 * '/') is wrong: grpc-js decodes with decodeURI, which leaves %3A and %2F as they are.
 */
export function grpcMessage(text: string): string {
  let out = ''
  for (const b of Buffer.from(text.slice(0, 256), 'utf8')) {
    out += b >= 0x20 && b <= 0x7e && b !== 0x25 ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return out
}

const GRPC_TIMEOUT_UNIT_MS: Readonly<Record<string, number>> = { H: 3_600_000, M: 60_000, S: 1000, m: 1, u: 1e-3, n: 1e-6 }

/** A `grpc-timeout` header (gRPC over HTTP/2: up to 8 digits and a unit), in ms; undefined when absent or malformed. */
export function grpcTimeoutMs(value: string | string[] | undefined): number | undefined {
  const v = Array.isArray(value) ? value[0] : value
  const m = v === undefined ? null : /^(\d{1,8})([HMSmun])$/.exec(v)
  return m ? Number(m[1]) * GRPC_TIMEOUT_UNIT_MS[m[2]!]! : undefined
}
