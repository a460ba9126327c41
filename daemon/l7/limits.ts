// What one downstream request may cost before hostmesh refuses it, with Envoy's defaults.

export interface L7Limits {
  /** Request line plus headers, in bytes (Envoy: max_request_headers_kb 60). Over it: 431. */
  readonly maxRequestHeadersBytes: number
  /** Request headers, by count (Envoy: max_headers_count 100). Over it: 431. */
  readonly maxRequestHeaders: number
  /** Time for a request's headers to arrive once it has begun (Envoy: request_headers_timeout, here 10 s). Over it: 408. */
  readonly headerTimeoutMs: number
  /**
   * A connection is closed after this long with no request on it (keep-alive idle), or with
   * no byte moving either way while a request is in flight.
   */
  readonly idleTimeoutMs: number
}

/**
 * Envoy's defaults, except the idle timeout. Envoy keeps an idle downstream connection for an
 * hour (idle_timeout) and a silent stream for 5 minutes (stream_idle_timeout). An idle
 * connection here holds a socket, a parser and JS buffers, so one number, Envoy's 5 minutes,
 * serves both. It is well above the idle time of common client pools (Go 90 s, undici 4 s,
 * hostmesh's own pool between hosts 60 s), so a client almost always closes an idle connection
 * before the server does and never reuses one the server is closing.
 */
export const DEFAULT_L7_LIMITS: L7Limits = Object.freeze({
  maxRequestHeadersBytes: 60 * 1024,
  maxRequestHeaders: 100,
  headerTimeoutMs: 10_000,
  idleTimeoutMs: 300_000,
})
