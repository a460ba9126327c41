// The local rate limit (rate-limiter.ts), after authorization: a request over it gets 429
// `local_rate_limited` (Envoy's body) with `x-hostmesh-ratelimited: true` and `retry-after`,
// flag RL (gRPC: RESOURCE_EXHAUSTED), and never reaches the workload.
import type { Exchange } from '../exchange.ts'
import { reply } from '../exchange.ts'
import type { InboundConn } from '../inbound-conn.ts'
import type { RateLimiter } from '../rate-limiter.ts'
import type { Stage } from '../../../base/stage.ts'

export function rateLimit(limiter: RateLimiter): Stage<Exchange<InboundConn>> {
  return async (x, next) => {
    const v = limiter.check(x.snapshot, x.conn)
    if (!v.ok) {
      x.error = `over the ${v.scope === 'identity' ? 'caller\'s' : 'workload\'s'} rate limit of ${v.policy}`
      return reply(x, { status: 429, flag: 'RL', message: 'local_rate_limited', headers: { 'x-hostmesh-ratelimited': 'true', 'retry-after': String(v.retryAfterSeconds) } })
    }
    await next()
  }
}
