// HTTPRoute `retry` (Gateway API GEP-1731) and `timeouts.backendRequest` (GEP-1742), for the
// destination service the split chose. Each try runs the rest of the pipeline (breaker →
// endpoint → upstream) under its own timeout; upstream.ts asks this stage's judge (x.retry)
// about each outcome before anything reaches the client. A try is retried when:
//   - its answer's status is in `codes` (default 500, 502, 503, 504), or it got no answer
//     (reset before headers, its own timeout), and the method is idempotent or the rule
//     allows every method (`allowNonIdempotent`);
//   - or it is a trailers-only gRPC answer whose grpc-status is in `grpcStatuses` (default
//     UNAVAILABLE), whatever the method: every gRPC call is a POST, and naming a status is the opt-in;
//   - or the upstream never saw it (connect failure, REFUSED_STREAM), whatever the method;
//   - and the body is still held (at most 64 KiB, replay-body.ts), attempts are left, and the
//     service's retry budget (Linkerd's) has a retry to give. Refused by the budget or the
//     attempts: the last answer goes to the client, flag URX.
// The next try waits a backoff with full jitter, exponential from `backoff` and capped at 10×
// (Envoy's), and goes to another endpoint when one is left (the endpoint stage skips x.tried).
import type { CompiledRetry } from '../../../policy/snapshot.ts'
import type { Stage } from '../../../base/stage.ts'
import type { RetryBudget, RetryBudgets } from '../../limits/retry-budget.ts'
import type { Exchange, TryOutcome } from '../exchange.ts'
import { started } from '../exchange.ts'
import { hasRequestBody } from '../forward.ts'
import { ReplayBody } from '../replay-body.ts'
import type { RetryMetrics } from '../retry-metrics.ts'
import { deadlineOf, expire } from './timeouts.ts'

/** RFC 9110 §9.2.2, less CONNECT (never routed here). */
const IDEMPOTENT = new Set(['GET', 'HEAD', 'OPTIONS', 'PUT', 'DELETE', 'TRACE'])
/** Envoy's max_interval default: 10 × the base interval. */
const BACKOFF_CAP = 10

export function retry<C>(budgets: RetryBudgets, metrics: RetryMetrics): Stage<Exchange<C>> {
  return async (x, next) => {
    const t = x.target!
    const budget = budgets.for(t.service, t.settings.retryBudget)
    budget.deposit()
    const policy = x.rule?.retry
    const perTryMs = x.rule?.timeouts.backendRequestMs
    if (!policy || policy.attempts === 0 || x.down.version === 'upgrade' || x.path === '*') {
      x.attempt = 1
      return tryOnce(x, next, perTryMs)
    }
    let again = false
    judge(x, policy, budget, metrics, t.service, () => { again = true })
    for (let n = 1; ; n++) {
      x.attempt = n
      again = false
      await tryOnce(x, next, perTryMs)
      if (!again || x.aborted || x.timedOut) return
      const deadline = deadlineOf(x)
      await sleep(Math.min(backoffMs(policy.backoffMs, n), deadline === undefined ? Infinity : Math.max(0, deadline - performance.now())))
      // The request timeout answered, or the client left, during the backoff.
      if (x.aborted || x.timedOut) return
    }
  }
}

function judge<C>(x: Exchange<C>, policy: CompiledRetry, budget: RetryBudget, metrics: RetryMetrics, service: string, retried: () => void): void {
  const anyMethod = policy.allowNonIdempotent || IDEMPOTENT.has(x.method)
  // The mirror stage may hold the body already.
  if (hasRequestBody(x) && !x.body) {
    const d = x.down
    if (d.version !== 'upgrade') x.body = new ReplayBody(d.version === '1.1' ? d.req : d.stream, (n) => { x.requestBytes += n })
  }
  x.retry = {
    again(o: TryOutcome): boolean {
      const retryable = 'failure' in o
        ? o.failure === 'connect' || o.failure === 'refused' || anyMethod
        // Every gRPC call is a POST: naming a status in grpcStatuses is its opt-in (as Envoy's retry_on).
        : o.grpcStatus !== undefined ? policy.grpcStatuses.has(o.grpcStatus) : anyMethod && policy.codes.has(o.status)
      if (x.attempt > 1) metrics.retried(service, retryable ? 'failure' : 'success')
      if (!retryable || x.aborted || x.timedOut || started(x)) return false
      // A body past the replay buffer went to this try only.
      if (x.body && !x.body.replayable) return false
      if (x.attempt > policy.attempts) return refuse(x, metrics, service, 'limit')
      if (!budget.withdraw()) return refuse(x, metrics, service, 'budget_exhausted')
      retried()
      return true
    },
  }
}

function refuse<C>(x: Exchange<C>, metrics: RetryMetrics, service: string, why: 'limit' | 'budget_exhausted'): false {
  metrics.retried(service, why)
  if (!x.flags.includes('URX')) x.flags.push('URX')
  return false
}

/** One try under `backendRequest`: before its answer starts it is cancelled (and may be retried); after, the client is reset. */
async function tryOnce<C>(x: Exchange<C>, next: () => Promise<void>, perTryMs: number | undefined): Promise<void> {
  x.tryTimedOut = false
  x.cancelUpstream = undefined
  if (!perTryMs) return next()
  const timer = setTimeout(() => {
    // An Upgrade is bounded until its 101; the tunnel after it is not a request.
    if (x.down.version === 'upgrade' && x.status === 101) return
    if (started(x)) return expire(x)
    x.tryTimedOut = true
    x.cancelUpstream?.()
  }, perTryMs)
  try {
    await next()
  } finally {
    clearTimeout(timer)
  }
}

/** Full jitter: uniform in [0, min(cap, base × 2^(n-1))) (Envoy, and AWS's "full jitter"). */
export function backoffMs(baseMs: number, n: number): number {
  return Math.random() * Math.min(baseMs * BACKOFF_CAP, baseMs * 2 ** (n - 1))
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms))
}
