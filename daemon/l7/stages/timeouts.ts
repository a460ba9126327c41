// HTTPRoute `timeouts.request` (Gateway API GEP-1742) bounds the whole exchange from the
// request's arrival to the end of its response, fault delays, retries and backoff included
// (`backendRequest`, one try, is the retry stage's). `0s` or absent: no bound. A gRPC call's `grpc-timeout` shortens the bound,
// never lengthens it. On expiry before the response has started, the client gets 504 `upstream
// request timeout` with flag UT (gRPC: DEADLINE_EXCEEDED); after, its connection or stream is
// reset. Either way the upstream request is cancelled, so the server sees it end.
import type { Exchange } from '../exchange.ts'
import { reply, started } from '../exchange.ts'
import { grpcTimeoutMs } from '../grpc.ts'

/** When the exchange must be over (performance.now() time), or undefined for no bound. */
export function deadlineOf<C>(x: Exchange<C>): number | undefined {
  const t = x.rule?.timeouts
  let ms = Infinity
  if (t?.requestMs) ms = Math.min(ms, t.requestMs)
  if (x.grpc) {
    const g = grpcTimeoutMs(x.down.version === '2' ? x.down.headers['grpc-timeout'] : undefined)
    if (g !== undefined) ms = Math.min(ms, g)
  }
  return ms === Infinity ? undefined : x.startedAt + ms
}

/** The timeout fired: answer 504 (or reset what has started), and cancel the upstream try. */
export function expire<C>(x: Exchange<C>): void {
  if (x.timedOut || x.aborted) return
  x.timedOut = true
  x.error = 'the route\'s timeout expired'
  if (!x.flags.includes('UT')) x.flags.push('UT')
  const wasStarted = started(x)
  x.cancelUpstream?.()
  if (!wasStarted) reply(x, { status: 504, flag: 'UT', message: 'upstream request timeout' })
}

export async function timeouts<C>(x: Exchange<C>, next: () => Promise<void>): Promise<void> {
  const deadline = deadlineOf(x)
  if (deadline === undefined) return next()
  const left = deadline - performance.now()
  if (left <= 0) return expire(x)
  const timer = setTimeout(() => {
    // An Upgrade is bounded until its 101; the tunnel after it is not a request.
    if (x.down.version === 'upgrade' && x.status === 101) return
    expire(x)
  }, left)
  try {
    await next()
  } finally {
    clearTimeout(timer)
  }
}
