// The source workload's cap on outbound requests in flight (node config
// outbound.maxRequestsPerWorkload, limits/workload-limits.ts), before anything else is spent on
// the request: over it, 503 at once with `x-hostmesh-overloaded: true`, flag UO (gRPC:
// UNAVAILABLE), as the circuit breakers answer; its slot is held until the exchange is over.
import type { Stage } from '../../../base/stage.ts'
import type { WorkloadLimits } from '../../limits/workload-limits.ts'
import type { Exchange } from '../exchange.ts'
import { overflow } from './breaker.ts'
import type { OutboundConn } from '../outbound-conn.ts'

export function workloadLimit(limits: WorkloadLimits): Stage<Exchange<OutboundConn>> {
  return async (x, next) => {
    const release = limits.acquire(x.conn.source.key, 'requests')
    if (!release) return overflow(x, new Error(`${x.conn.source.key}: over outbound.maxRequestsPerWorkload`))
    try {
      await next()
    } finally {
      release()
    }
  }
}
