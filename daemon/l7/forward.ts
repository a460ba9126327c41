// Sending one request upstream and relaying its response, streamed both ways with
// backpressure (pipe), never buffered whole. send*() resolves when the upstream's response
// head arrives, so a stage can still answer locally until then; relay() then commits the
// response to the client. Aborts go both ways: a client that leaves cancels the upstream
// request (its stream is reset, so the server sees the cancel), and an upstream that fails
// mid-body resets the client's stream, the only honest signal once a response has started.
import type { Agent, IncomingHttpHeaders, IncomingMessage } from 'node:http'
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import { Readable, type Duplex } from 'node:stream'
import type { Dispatcher } from 'undici'
import type { HeaderModifier } from '../../policy/snapshot.ts'
import http, { STATUS_CODES } from '../net/node-http.ts'
import type { Exchange, TryFailure } from './exchange.ts'
import { applyHeaderModifier } from './filters.ts'
import { responseHeaders, type HeaderMap } from './headers.ts'

export interface UpstreamResponse {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  readonly body: Readable
  /**
   * HTTP/2: the response head ended the stream (no body, no trailers). gRPC's trailers-only
   * form (a status with no message, e.g. an error) is this, and must reach the client the
   * same way: a client reads grpc-status from the head only when the head ends the stream.
   */
  readonly headersOnly?: boolean
  /** The trailers, once the body has ended. */
  trailers(): IncomingHttpHeaders | undefined
  /** Cancels the upstream request (reset). */
  abort(): void
  /** HTTP/2: the upstream stream was reset or its session died (even if its body "ended"). */
  reset?(): boolean
}

/** The upstream failed mid-response: the client is cut off (`cutOff`), unless it already left. */
function cut<C>(x: Exchange<C>, cutOff: () => void): void {
  if (x.aborted) return
  x.aborted = true
  x.error ??= 'upstream reset after the response started'
  cutOff()
}

/** The upstream failed before a response head: nothing reached the client yet. */
export class UpstreamFailure extends Error {
  override readonly name = 'UpstreamFailure'
  /** What the retry stage needs to know: whether the upstream can have seen the request. */
  readonly kind: TryFailure

  constructor(message: string, kind: TryFailure, options?: ErrorOptions) {
    super(message, options)
    this.kind = kind
  }
}

function target<C>(x: Exchange<C>): string {
  return x.query ? `${x.path}?${x.query}` : x.path
}

/**
 * Watches the client from the moment its request is admitted (admit.ts): if it leaves before
 * its response is complete, the exchange is aborted (DC) and the upstream try in flight, if
 * any, cancelled; a try not yet sent is never sent (upstream.ts checks `aborted`).
 */
export function watchDownstream<C>(x: Exchange<C>): void {
  const d = x.down
  if (d.version === 'upgrade') return
  const closed = (): void => {
    // A stream the client reset is finished for node too: only a close with NO_ERROR is complete.
    const done = d.version === '1.1' ? d.res.writableFinished : d.stream.writableFinished && d.stream.rstCode === http2.constants.NGHTTP2_NO_ERROR
    // x.aborted already: relay() cut the client off because the upstream failed.
    if (done || x.aborted) return
    x.aborted = true
    if (!x.flags.includes('DC')) x.flags.push('DC')
    x.cancelUpstream?.()
  }
  if (d.version === '1.1') d.res.once('close', closed)
  else d.stream.once('close', closed)
}

/**
 * Counts the request body as it goes (once per exchange: a body that may be sent again is
 * counted by its ReplayBody); `cancel` is what a client that leaves (or a timeout) calls.
 */
function watchClient<C>(x: Exchange<C>, cancel: () => void): void {
  x.cancelUpstream = cancel
  const d = x.down
  if (d.version === 'upgrade' || x.body || x.attempt > 1) return
  const body: Readable = d.version === '1.1' ? d.req : d.stream
  body.on('data', (c: Buffer) => { x.requestBytes += c.length })
  // A 'data' listener makes the body flow at once; whoever sends it upstream resumes it once
  // it is ready to write (undici does so only when connected): until then nothing is lost.
  body.pause()
}

/**
 * HTTP/1.1 upstream through undici's dispatch API (measured: about half the CPU per request of
 * node:http, BENCHMARKS.md). The response body is a Readable with backpressure: undici is
 * paused while the client is not reading. `Expect: 100-continue` is answered here, as Envoy
 * does by default (undici does not send Expect): the body then flows upstream as it comes.
 */
export function sendH1<C>(x: Exchange<C>, dispatcher: Dispatcher, sent?: () => void): Promise<UpstreamResponse> {
  const d = x.down
  if (d.version !== '1.1') throw new TypeError('sendH1 needs an HTTP/1.1 exchange')
  const headers: HeaderMap = { host: x.authority, ...x.headers }
  delete headers.te
  if (headers.expect !== undefined) {
    delete headers.expect
    if (x.attempt <= 1 && /^100-continue$/i.test(String(d.req.headers.expect)) && !d.res.headersSent) d.res.writeContinue()
  }
  // A body held for another try goes as one buffer once complete (undici then sets its length).
  const held = x.body?.complete
  const body = !hasRequestBody(x) ? null : held ?? x.body?.attempt() ?? d.req
  if (held) delete headers['transfer-encoding']
  return new Promise((resolve, reject) => {
    let controller: Dispatcher.DispatchController | undefined
    let cancelled = false
    let trailers: IncomingHttpHeaders | undefined
    let started = false
    const response = new Readable({ read() { controller?.resume() } })
    // A body cut short is seen by relay() as a close before its end; the error itself is ours.
    response.on('error', () => undefined)
    const cancel = (): void => {
      cancelled = true
      // Not sent yet (undici hands the controller over once connected): it never will be, and
      // the caller need not wait for the connection to learn that.
      if (controller) controller.abort(new Error('the request was cancelled'))
      else reject(new UpstreamFailure('the request was cancelled before it was sent', 'connect'))
    }
    watchClient(x, cancel)
    dispatcher.dispatch({ method: x.method as Dispatcher.HttpMethod, path: target(x), headers: headers as Record<string, string | string[]>, body }, {
      onRequestStart(c) {
        controller = c
        // On a connection now: no longer waiting for one (maxPendingRequests).
        sent?.()
        if (cancelled) c.abort(new Error('the request was cancelled'))
      },
      onResponseStart(_c, status, h) {
        // Interim answers (102, 103) are not passed on: the client is answered once, with the final one.
        if (status < 200) return
        started = true
        resolve({ status, headers: h, body: response, trailers: () => trailers, abort: cancel })
      },
      onResponseData(c, chunk) {
        if (!response.push(chunk)) c.pause()
      },
      onResponseEnd(_c, t) {
        if (Object.keys(t).length > 0) trailers = t
        response.push(null)
      },
      onResponseError(_c, err) {
        // Before undici handed over its controller the request was not written: a connect failure.
        if (!started) return reject(new UpstreamFailure(err.message, controller ? 'reset' : 'connect', { cause: err }))
        response.destroy(err)
      },
    })
  })
}

/**
 * The asterisk-form target (`OPTIONS *`, RFC 9112 §3.2.4), which undici does not send: one
 * request on a connection of its own through node:http. Rare; never pooled.
 */
export function sendH1Asterisk<C>(x: Exchange<C>, agent: Agent): Promise<UpstreamResponse> {
  const d = x.down
  if (d.version !== '1.1') throw new TypeError('sendH1Asterisk needs an HTTP/1.1 exchange')
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, method: x.method, path: target(x), headers: { host: x.authority, ...x.headers }, setHost: false })
    watchClient(x, () => req.destroy())
    req.once('error', (err) => reject(new UpstreamFailure(err.message, 'reset', { cause: err })))
    req.once('response', (res: IncomingMessage) => resolve({
      status: res.statusCode ?? 502, headers: res.headers, body: res,
      trailers: () => (Object.keys(res.trailers).length > 0 ? res.trailers : undefined),
      abort: () => req.destroy(),
    }))
    d.req.pipe(req)
  })
}

export function sendH2<C>(x: Exchange<C>, session: ClientHttp2Session): Promise<UpstreamResponse> {
  const d = x.down
  if (d.version !== '2') throw new TypeError('sendH2 needs an HTTP/2 exchange')
  return new Promise((resolve, reject) => {
    let s: ClientHttp2Stream
    try {
      s = session.request({ ...x.headers, ':method': x.method, ':path': target(x), ':authority': x.authority, ':scheme': 'http' }, { waitForTrailers: true })
    } catch (err) {
      // The session is gone: nothing was sent on it.
      return reject(new UpstreamFailure((err as Error).message, 'connect', { cause: err }))
    }
    let requestTrailers: IncomingHttpHeaders | undefined
    let responseTrailers: IncomingHttpHeaders | undefined
    watchClient(x, () => s.close(http2.constants.NGHTTP2_CANCEL))
    const held = x.body
    if (!held) d.stream.on('trailers', (t: IncomingHttpHeaders) => { requestTrailers = t })
    s.on('wantTrailers', () => {
      const t = held ? held.trailers : requestTrailers
      s.sendTrailers(t ? responseHeaders(t) : {})
    })
    s.on('trailers', (t: IncomingHttpHeaders) => { responseTrailers = t })
    // REFUSED_STREAM: the server did not process the stream (RFC 9113 §8.7), so any method may go again.
    const kind = (): TryFailure => (s.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM ? 'refused' : 'reset')
    s.once('error', (err) => reject(new UpstreamFailure(err.message, kind(), { cause: err })))
    s.once('close', () => reject(new UpstreamFailure(`upstream stream closed before a response (code ${s.rstCode})`, kind())))
    s.once('response', (headers, flags) => resolve({
      status: Number(headers[':status']), headers, body: s,
      headersOnly: (flags & http2.constants.NGHTTP2_FLAG_END_STREAM) !== 0,
      trailers: () => responseTrailers,
      abort: () => s.close(http2.constants.NGHTTP2_CANCEL),
      reset: () => s.rstCode !== undefined && s.rstCode !== http2.constants.NGHTTP2_NO_ERROR,
    }))
    if (held) held.attempt().pipe(s)
    else d.stream.pipe(s)
  })
}

/** Whether the client's request has a body to send (HTTP/1.1 framing, or an HTTP/2 stream still open). */
export function hasRequestBody<C>(x: Exchange<C>): boolean {
  const d = x.down
  if (d.version === '2') return !d.stream.endAfterHeaders
  if (d.version === 'upgrade') return false
  const h = d.req.headers
  return h['transfer-encoding'] !== undefined || (h['content-length'] !== undefined && h['content-length'] !== '0')
}

/** Response fields for the client: hop-by-hop removed, the route's ResponseHeaderModifier applied. */
function outgoing(headers: IncomingHttpHeaders, modifier: HeaderModifier | undefined): HeaderMap {
  const h = responseHeaders(headers) as HeaderMap
  if (modifier) applyHeaderModifier(modifier, h)
  return h
}

/** Streams `up` to the client; resolves when the exchange is over either way. */
export function relay<C>(x: Exchange<C>, up: UpstreamResponse): Promise<void> {
  const d = x.down
  if (d.version === 'upgrade') throw new TypeError('relay needs an HTTP/1.1 or HTTP/2 exchange')
  const headers = outgoing(up.headers, x.responseModifier)
  x.status = up.status
  const grpcHead = up.headers['grpc-status']
  if (grpcHead !== undefined) x.grpcStatus = Number(grpcHead)
  up.body.on('data', (c: Buffer) => { x.responseBytes += c.length })
  return new Promise<void>((resolve) => {
    // The client left while the response head was on its way: nothing to relay, no 'close' to wait for.
    if (x.aborted || (d.version === '1.1' ? d.res.closed : d.stream.closed || d.stream.destroyed)) {
      up.abort()
      return resolve()
    }
    if (d.version === '1.1') {
      d.res.once('close', () => resolve())
      d.res.writeHead(up.status, headers)
      up.body.pipe(d.res, { end: false })
      up.body.once('end', () => {
        const t = up.trailers()
        if (t && d.res.chunkedEncoding) d.res.addTrailers(responseHeaders(t))
        d.res.end()
      })
      // An upstream that dies mid-body: the client's connection is reset, not ended cleanly.
      up.body.once('close', () => { if (!up.body.readableEnded) cut(x, () => d.res.destroy()) })
      return
    }
    const s = d.stream
    s.once('close', () => resolve())
    if (up.headersOnly) {
      s.respond({ ...headers, ':status': up.status }, { endStream: true })
      return void up.body.resume()
    }
    s.respond({ ...headers, ':status': up.status }, { waitForTrailers: true })
    s.on('wantTrailers', () => {
      const t = up.trailers()
      if (t?.['grpc-status'] !== undefined) x.grpcStatus = Number(t['grpc-status'])
      s.sendTrailers(t ? responseHeaders(t) : {})
    })
    const reset = (): void => cut(x, () => { if (!s.destroyed) s.close(http2.constants.NGHTTP2_INTERNAL_ERROR) })
    up.body.pipe(s, { end: false })
    // An upstream session that dies ends its streams as if complete, with a CANCEL code: that
    // must reach the client as a reset, never as the end of a (truncated) response.
    up.body.once('end', () => { if (up.reset?.()) reset(); else s.end() })
    up.body.once('close', () => { if (!up.body.readableEnded) reset() })
  })
}

/**
 * An HTTP/1.1 Upgrade (WebSocket): the request goes upstream on a connection of its own; a
 * 101 answer turns both connections into one tunnel (bytes both ways until either side
 * closes); any other answer is relayed and the client's connection closed.
 */
export function upgradeH1<C>(x: Exchange<C>, agent: Agent): Promise<void> {
  const d = x.down
  if (d.version !== 'upgrade') throw new TypeError('upgradeH1 needs an Upgrade exchange')
  const headers: HeaderMap = { host: x.authority, ...x.headers, connection: 'Upgrade' }
  const upgrade = d.req.headers.upgrade
  if (upgrade !== undefined) headers.upgrade = upgrade
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, method: x.method, path: target(x), headers, setHost: false })
    x.cancelUpstream = () => req.destroy()
    const gone = (): void => { x.aborted = true; req.destroy() }
    d.socket.once('close', gone)
    req.once('error', (err) => reject(new UpstreamFailure(err.message, 'reset', { cause: err })))
    const head = (status: number, message: string | undefined, raw: readonly string[], extra: string): string => {
      let s = `HTTP/1.1 ${status} ${message ?? STATUS_CODES[status] ?? ''}\r\n`
      for (let i = 0; i + 1 < raw.length; i += 2) s += `${raw[i]}: ${raw[i + 1]}\r\n`
      return `${s}${extra}\r\n`
    }
    req.once('upgrade', (res: IncomingMessage, socket: Duplex, upHead: Buffer) => {
      d.socket.off('close', gone)
      x.status = res.statusCode ?? 101
      x.record.responseStarted()
      d.socket.write(head(x.status, res.statusMessage, res.rawHeaders, ''))
      // Tunnel bytes that came with either head count as much as those after it.
      x.responseBytes += upHead.length
      x.requestBytes += d.head.length
      if (upHead.length > 0) d.socket.write(upHead)
      if (d.head.length > 0) socket.write(d.head)
      d.socket.on('data', (c: Buffer) => { x.requestBytes += c.length })
      socket.on('data', (c: Buffer) => { x.responseBytes += c.length })
      socket.on('error', () => undefined)
      d.socket.pipe(socket)
      socket.pipe(d.socket)
      let open = 2
      const closed = (): void => { if (--open === 0) resolve() }
      const end = (): void => { d.socket.destroy(); socket.destroy() }
      d.socket.once('close', () => { end(); closed() })
      socket.once('close', () => { end(); closed() })
    })
    req.once('response', (res: IncomingMessage) => {
      d.socket.off('close', gone)
      x.status = res.statusCode ?? 502
      x.record.responseStarted()
      const h = outgoing(res.headers, x.responseModifier)
      const raw: string[] = []
      for (const [k, v] of Object.entries(h)) for (const one of Array.isArray(v) ? v : [String(v)]) raw.push(k, one)
      d.socket.write(head(x.status, res.statusMessage, raw, 'connection: close\r\n'))
      res.on('data', (c: Buffer) => { x.responseBytes += c.length })
      // An upstream that dies mid-body (or is cancelled by a timeout): the client's connection
      // is reset, not left open on a truncated answer.
      res.once('close', () => { if (!res.readableEnded) { x.aborted = true; d.socket.destroy() } })
      res.pipe(d.socket)
      d.socket.once('close', () => { res.destroy(); resolve() })
    })
    req.end()
  })
}
