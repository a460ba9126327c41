// Why node ended an HTTP/2 session (its 'error' event), as a short reason for a metric label.
// Both HTTP/2 servers (the HBONE port and the L7 front) count the sessions a peer makes
// them end: node's guards catch the floods (nghttp2's limits on control frames, headers and
// CONTINUATION frames; node's stream reset rate), and the session is destroyed.

export type H2CloseReason = 'flood' | 'protocol' | 'reset_flood' | 'other'

/**
 * What node's HTTP/2 session error says, as a reason; undefined for an error of the connection
 * under it (a reset, a broken pipe): a peer that crashed is not an abuser. Node's messages
 * (Node 24): nghttp2's "Flooding was detected..." (SETTINGS, PING, RST_STREAM answers queued
 * unread) and "Too many CONTINUATION frames..."; node's rapid-reset guard fails its frame
 * callback ("The user callback function failed").
 */
export function h2CloseReason(err: Error & { code?: string }): H2CloseReason | undefined {
  if (err.code !== 'ERR_HTTP2_ERROR' && err.code !== 'ERR_HTTP2_SESSION_ERROR') return undefined
  if (/flood|CONTINUATION/i.test(err.message)) return 'flood'
  if (/callback function failed/i.test(err.message)) return 'reset_flood'
  if (/protocol/i.test(err.message)) return 'protocol'
  return 'other'
}
