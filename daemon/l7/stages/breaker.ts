// The circuit breaker of the destination service the split chose (DestinationPolicy
// connectionPool.maxRequests, Envoy's max_requests, default 1024): a request over it is refused
// at once with 503 and `x-hostmesh-overloaded: true`, flag UO (gRPC: UNAVAILABLE), never queued;
// its slot is held until the exchange is over.
import type { Stage } from '../../../base/stage.ts'
import type { CircuitBreakers } from '../../limits/circuit-breaker.ts'
import type { Exchange } from '../exchange.ts'
import { reply } from '../exchange.ts'

export function breaker<C>(breakers: CircuitBreakers): Stage<Exchange<C>> {
  return async (x, next) => {
    const t = x.target!
    const release = breakers.acquire(t.service, 'requests', t.settings.connectionPool.maxRequests)
    if (!release) {
      x.error = `${t.service}: over its circuit breaker's maxRequests (${t.settings.connectionPool.maxRequests})`
      return reply(x, { status: 503, flag: 'UO', message: 'upstream overflow', headers: { 'x-hostmesh-overloaded': 'true' } })
    }
    try {
      await next()
    } finally {
      release()
    }
  }
}
