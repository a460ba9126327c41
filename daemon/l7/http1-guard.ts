// Checks on a parsed HTTP/1.1 request head for what node's strict parser (llhttp) lets
// through but a proxy must not pass on: versions other than 1.0 and 1.1 (llhttp accepts
// HTTP/0.9 and HTTP/2.0 request lines), a missing, repeated or malformed Host, a
// Transfer-Encoding other than one `chunked` (llhttp accepts `identity, chunked` and a
// second Transfer-Encoding header), Transfer-Encoding on HTTP/1.0, fragments and backslashes
// in the request-target, and an absolute-form target naming another host than Host. Runs once
// per request on node's already-parsed fields (no byte scan: llhttp itself rejects bare CR and
// LF, obs-fold, whitespace before the colon and control characters).
import type { IncomingMessage } from 'node:http'
import type { Rejection } from './client-error.ts'
import type { L7Limits } from './limits.ts'

// uri-host [ ":" port ] (RFC 9112 §3.2, RFC 3986 §3.2.2): an IP literal or a non-empty
// reg-name (RFC 9110 §4.2.1: an http URI with an empty host is invalid).
const HOST = /^(?:\[[0-9A-Fa-f:.]+\]|[A-Za-z0-9\-._~%!$&'()*+,;=]+)(?::[0-9]*)?$/
const ABSOLUTE = /^https?:\/\/([^/?#]*)/i

const VERSION: Rejection = { status: 400, reason: 'unsupported HTTP version' }
const TOO_MANY: Rejection = { status: 431, reason: 'too many headers' }
const NO_HOST: Rejection = { status: 400, reason: 'missing Host' }
const HOSTS: Rejection = { status: 400, reason: 'multiple Host' }
const BAD_HOST: Rejection = { status: 400, reason: 'invalid Host' }
const TE_HTTP10: Rejection = { status: 400, reason: 'Transfer-Encoding in HTTP/1.0' }
const TE_CODING: Rejection = { status: 501, reason: 'Transfer-Encoding other than chunked' }
const TARGET: Rejection = { status: 400, reason: 'invalid request-target' }
const AUTHORITY: Rejection = { status: 400, reason: 'absolute-form authority differs from Host' }

/** Why `req` must be refused, or undefined when it may go on. */
export function checkRequestHead(req: IncomingMessage, limits: L7Limits): Rejection | undefined {
  if (req.httpVersionMajor !== 1 || req.httpVersionMinor > 1) return VERSION
  const raw = req.rawHeaders
  // node stops at maxHeadersCount + 1 (set so): one over the limit gets here.
  if (raw.length > limits.maxRequestHeaders * 2) return TOO_MANY
  let host: string | undefined
  let hosts = 0
  let coding: string | undefined
  let codings = 0
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!
    if (name.length === 4 && name.toLowerCase() === 'host') {
      hosts++
      host = raw[i + 1]
    } else if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') {
      codings++
      coding = raw[i + 1]
    }
  }
  // RFC 9112 §3.2: 400 for a missing Host (HTTP/1.1), more than one, or an invalid one.
  if (hosts > 1) return HOSTS
  if (host === undefined) {
    if (req.httpVersionMinor === 1) return NO_HOST
  } else if (!HOST.test(host)) return BAD_HOST
  if (codings > 0) {
    // RFC 9112 §6.1: Transfer-Encoding in HTTP/1.0 means faulty framing.
    if (req.httpVersionMinor === 0) return TE_HTTP10
    // Only `chunked` is understood (case-insensitive, RFC 9112 §7); anything else, a list or a
    // second header: 501 (RFC 9112 §6.1, as Envoy does).
    if (codings > 1 || coding!.toLowerCase() !== 'chunked') return TE_CODING
  }
  // A server's IncomingMessage always has both.
  return checkTarget(req.method!, req.url!, host)
}

/**
 * origin-form, `*` for OPTIONS, or absolute-form (http/https) whose authority is the Host
 * header. RFC 9112 §3.2.2 has the target's authority override Host; requiring them equal
 * instead means routing (by Host) and the upstream (which may read the target) can never
 * disagree about the destination. Authority-form (CONNECT) never gets here: node hands CONNECT
 * to a separate event.
 */
function checkTarget(method: string, url: string, host: string | undefined): Rejection | undefined {
  let pathAt = 0
  if (url.charCodeAt(0) !== 0x2f /* / */) {
    if (url === '*') return method === 'OPTIONS' ? undefined : TARGET
    const m = ABSOLUTE.exec(url)
    if (!m) return TARGET
    const authority = m[1]!
    if (host === undefined || authority.includes('@') || authority.toLowerCase() !== host.toLowerCase()) return AUTHORITY
    pathAt = m[0].length
  }
  // A fragment is never sent (RFC 9112 §3.2; Envoy rejects it), and a backslash in the path is
  // read as `/` by some servers, a way around path rules.
  if (url.includes('#')) return TARGET
  const q = url.indexOf('?', pathAt)
  const b = url.indexOf('\\', pathAt)
  return b >= 0 && (q < 0 || b < q) ? TARGET : undefined
}
