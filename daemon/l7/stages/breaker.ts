// The circuit breaker of the destination service the split chose (DestinationPolicy
// connectionPool.maxRequests, Envoy's max_requests, default 1024): a request over it is refused
// at once with 503 and `x-hostmesh-overloaded: true`, flag UO (gRPC: UNAVAILABLE), never queued;
// its slot is held until the exchange is over.
import type { Stage } from '../../../base/stage.ts'
import type { CircuitBreakers } from '../../limits/circuit-breaker.ts'
import type { Exchange } from '../exchange.ts'
import { reply } from '../exchange.ts'
import { UpstreamOverflow } from '../../limits/errors.ts'

export function breaker<C>(breakers: CircuitBreakers): Stage<Exchange<C>> {
  return async (x, next) => {
    const t = x.target!
    const limit = t.settings.connectionPool.maxRequests
    const release = breakers.acquire(t.service, 'requests', limit)
    if (!release) return overflow(x, new UpstreamOverflow(t.service, 'requests', limit))
    try {
      await next()
    } finally {
      release()
    }
  }
}

/**
 * Envoy's upstream overflow, for every breaker resource (maxRequests here; maxPendingRequests
 * and maxConnections in upstream.ts) and the source workload's own cap (workload-limit.ts):
 * 503 at once, flag UO, `x-hostmesh-overloaded: true` (gRPC: UNAVAILABLE).
 */
export function overflow<C>(x: Exchange<C>, err: Error): void {
  x.error = err.message
  reply(x, { status: 503, flag: 'UO', message: 'upstream overflow', headers: { 'x-hostmesh-overloaded': 'true' } })
}
