// The last stage on both hosts: the request goes to the chosen connection (a pooled HBONE
// stream to the endpoint on the source host, a pooled TCP connection to the local workload on
// the destination), in the protocol the client spoke, and the response comes back.
//   failure before a response head: 503 UF (Envoy's "upstream connect error or disconnect/
//   reset before headers"), or 504 UT when the try's own timeout cut it; the destination's
//   CONNECT refusal (401): 403 UAEX. A try's outcome goes to the retry stage's judge first
//   (x.retry): a retried try ends here, unanswered, and the retry stage sends the next.
import { causeChain } from '../../../base/errors.ts'
import type { RequestOutcome } from '../../balance/balancer.ts'
import type { Exchange } from '../exchange.ts'
import { GRPC } from '../grpc.ts'
import { UpstreamOverflow } from '../../limits/errors.ts'
import { overflow } from './breaker.ts'
import { reply } from '../exchange.ts'
import { relay, sendH1, sendH1Asterisk, sendH2, upgradeH1, UpstreamFailure, type UpstreamResponse } from '../forward.ts'
import { oneShotAgent, type Connect, type UpstreamPool } from '../pool.ts'
import type { Stage } from '../../../base/stage.ts'

export interface UpstreamChoice {
  /** Pool key: one pool per (source workload, endpoint), or per local workload address. */
  readonly key: string
  /** `ip:port` of the upstream, for :authority of the h2c session and the access log. */
  readonly address: string
  readonly connect: Connect
  /** What the try's outcome tells the balancer (source side): status 0 when there was no response. */
  readonly observe?: (outcome: RequestOutcome) => void
  /**
   * A slot of the destination service's maxPendingRequests, held while the request waits for
   * a connection; undefined when the breaker is open (503 UO). Absent: no such limit.
   */
  readonly pending?: () => (() => void) | undefined
}

export function upstream<C>(pool: UpstreamPool, choose: (x: Exchange<C>) => UpstreamChoice): Stage<Exchange<C>> {
  return async (x) => {
    // The client left, or the timeout answered, while earlier stages ran: send nothing.
    if (x.aborted || x.timedOut) return
    const u = choose(x)
    x.record.update({ upstream: u.address })
    // Set by the source host's retry stage; the destination passes on what the source sent.
    if (x.attempt > 0) x.headers['x-hostmesh-attempt-count'] = String(x.attempt)
    const sent = u.pending?.()
    if (u.pending && !sent) return overflow(x, new UpstreamOverflow(x.target?.service ?? u.address, 'pending', x.target?.settings.connectionPool.maxPendingRequests ?? 0))
    const t0 = performance.now()
    let up: UpstreamResponse
    try {
      const d = x.down
      if (d.version === 'upgrade') return await upgradeH1(x, oneShotAgent(u.connect))
      if (d.version === '1.1') {
        up = await (x.path === '*' ? sendH1Asterisk(x, oneShotAgent(u.connect)) : sendH1(x, pool.dispatcher(u.key, u.address, u.connect), sent))
      } else {
        const session = await pool.session(u.key, u.address, u.connect)
        sent?.()
        // A timeout may have fired while the session was being opened.
        if (x.timedOut || x.aborted) return
        if (x.tryTimedOut) throw new UpstreamFailure('the try\'s timeout expired', 'timeout')
        up = await sendH2(x, session)
      }
    } catch (err) {
      sent?.()
      const latencyMs = performance.now() - t0
      // timeouts.ts answered (504) and cancelled this try: nothing more to say.
      if (x.timedOut) return u.observe?.({ latencyMs, status: 0 })
      // The client left: that says nothing about the endpoint (Envoy does not count it either).
      if (x.aborted) {
        u.observe?.({ latencyMs, status: undefined })
        if (!x.flags.includes('DC')) x.flags.push('DC')
        return
      }
      x.error = (err as Error).message
      const chain = causeChain(err)
      const status = chain.map((e) => (e as { status?: unknown }).status).find((s) => typeof s === 'number')
      // The pool could not open one more connection within maxConnections: nothing was sent.
      const over = chain.find((e) => e instanceof UpstreamOverflow)
      // The destination's authorization refused the tunnel, or our own breaker did: a policy
      // answer, not an unhealthy endpoint.
      u.observe?.({ latencyMs, status: status === 401 || over ? undefined : 0 })
      if (status === 401) return reply(x, { status: 403, flag: 'UAEX', message: 'RBAC: access denied' })
      if (over) return overflow(x, over)
      const failure = x.tryTimedOut ? 'timeout' : err instanceof UpstreamFailure ? err.kind : 'connect'
      if (x.retry?.again({ failure })) return
      if (failure === 'timeout') return reply(x, { status: 504, flag: 'UT', message: 'upstream request timeout' })
      return reply(x, { status: 503, flag: 'UF', message: 'upstream connect error or disconnect/reset before headers' })
    }
    const grpc = up.headersOnly ? grpcOf(up) : {}
    u.observe?.({ latencyMs: performance.now() - t0, status: grpc.grpcStatus === undefined ? up.status : httpOfGrpc(grpc.grpcStatus) })
    // A retried answer is dropped before any of it reaches the client.
    if (x.retry?.again({ status: up.status, ...grpc })) return discard(up, x.down.version === '2')
    x.record.responseStarted()
    await relay(x, up)
  }
}

function grpcOf(up: UpstreamResponse): { grpcStatus?: number } {
  const g = up.headers['grpc-status']
  return g === undefined ? {} : { grpcStatus: Number(g) }
}

/**
 * What a trailers-only gRPC status means for outlier detection: Envoy's grpcToHttpStatus for
 * the statuses that count as errors (UNAVAILABLE 503, DEADLINE_EXCEEDED 504, UNKNOWN and
 * INTERNAL 500); any other status is the call's own business, not the endpoint's health.
 */
function httpOfGrpc(code: number): number {
  switch (code) {
    case GRPC.UNAVAILABLE: return 503
    case GRPC.DEADLINE_EXCEEDED: return 504
    case GRPC.UNKNOWN: case GRPC.INTERNAL: return 500
    default: return 200
  }
}

/**
 * Drops a retried answer. HTTP/1.1: a small one is read to its end, so its connection stays in
 * the pool; a large one is cancelled. HTTP/2: the stream is always reset, which costs nothing
 * and also ends our side of it (a request body still streaming would keep it open).
 */
function discard(up: UpstreamResponse, h2: boolean): void {
  const length = Number(up.headers['content-length'])
  if (!h2 && length >= 0 && length <= DRAIN_LIMIT) up.body.resume()
  else up.abort()
}

/** Envoy resets a retried upstream request; a body this small costs less to read than a new connection. */
const DRAIN_LIMIT = 16 * 1024
