// Sending a mirrored copy of a request (HTTPRoute RequestMirror): a buffered request goes
// through an HTTP/1.1 pool or an h2c session, and its answer is read to the end and thrown
// away. Nothing here touches the original exchange: a copy that fails only rejects its own
// promise. `signal` bounds the whole send, the answer's body included.
import type { IncomingHttpHeaders } from 'node:http'
import http2, { type ClientHttp2Session } from 'node:http2'
import type { Dispatcher } from 'undici'
import { responseHeaders, type HeaderMap } from './headers.ts'

export interface MirrorRequest {
  readonly method: string
  /** Path and query, as sent upstream. */
  readonly target: string
  /** Already with its `-shadow` suffix (shadowAuthority). */
  readonly authority: string
  /** End-to-end fields (headers.ts), names lowercase, as the original had them after the filters. */
  readonly headers: HeaderMap
  /** The whole body; absent when the request had none. */
  readonly body?: Buffer
  /** HTTP/2 request trailers, sent after the body. */
  readonly trailers?: IncomingHttpHeaders
}

/**
 * Envoy's shadow host: `-shadow` goes after the host, before any port (`foo:8080` →
 * `foo-shadow:8080`, `foo` → `foo-shadow`, `[::1]:80` → `[::1]-shadow:80`), so the mirror's
 * logs and virtual hosts can tell copies from originals.
 */
export function shadowAuthority(authority: string): string {
  const colon = authority.lastIndexOf(':')
  // A colon inside an IPv6 literal's brackets is not a port's.
  const port = colon >= 0 && authority.lastIndexOf(']') < colon ? colon : -1
  return port < 0 ? `${authority}-shadow` : `${authority.slice(0, port)}-shadow${authority.slice(port)}`
}

/** Over HTTP/1.1; resolves with the answer's status once its body has been read. */
export async function mirrorH1(dispatcher: Dispatcher, r: MirrorRequest, signal: AbortSignal): Promise<number> {
  const headers: HeaderMap = { ...r.headers, host: r.authority }
  // undici frames a Buffer body itself; a client's Expect was the original's business.
  delete headers.te
  delete headers.expect
  delete headers['content-length']
  delete headers['transfer-encoding']
  const res = await dispatcher.request({
    method: r.method as Dispatcher.HttpMethod, path: r.target, headers: headers as Record<string, string | string[]>,
    body: r.body ?? null, signal,
  })
  // Read to the end, so a kept-alive connection goes back to the pool.
  for await (const _ of res.body) { /* discarded */ }
  return res.statusCode
}

/** Over an h2c session; resolves with the answer's status once its stream has ended. */
export function mirrorH2(session: ClientHttp2Session, r: MirrorRequest, signal: AbortSignal): Promise<number> {
  return new Promise((resolve, reject) => {
    const trailers = r.trailers ? responseHeaders(r.trailers) : undefined
    const hasBody = r.body !== undefined && r.body.length > 0
    const s = session.request(
      { ...r.headers, ':method': r.method, ':path': r.target, ':authority': r.authority, ':scheme': 'http' },
      { endStream: !hasBody && !trailers, ...(trailers ? { waitForTrailers: true } : {}), signal },
    )
    let status = 0
    s.on('error', reject)
    s.once('response', (h) => { status = Number(h[':status']) })
    if (trailers) s.once('wantTrailers', () => s.sendTrailers(trailers))
    s.once('close', () => {
      if (status > 0 && s.rstCode === http2.constants.NGHTTP2_NO_ERROR) resolve(status)
      else reject(new Error(`the mirror's stream closed ${status > 0 ? 'mid-answer' : 'before an answer'} (code ${s.rstCode})`))
    })
    s.resume()
    if (hasBody) s.end(r.body)
    else if (trailers) s.end()
  })
}
