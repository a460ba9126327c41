import { HostmeshError } from '../../base/errors.ts'
import type { BreakerResource } from './circuit-breaker.ts'

/** The DestinationPolicy connectionPool field that limits each breaker resource. */
const FIELD: Record<BreakerResource, string> = { requests: 'maxRequests', connections: 'maxConnections', pending: 'maxPendingRequests' }

/**
 * A destination service's circuit breaker was at its limit, so nothing was dialled or sent:
 * Envoy's upstream overflow (flag UO; the request path answers 503 with
 * `x-hostmesh-overloaded: true`).
 */
export class UpstreamOverflow extends HostmeshError {
  readonly service: string
  readonly resource: BreakerResource
  readonly limit: number
  constructor(service: string, resource: BreakerResource, limit: number) {
    super('HOSTMESH_ERR_UPSTREAM_OVERFLOW', `${service}: over its circuit breaker's ${FIELD[resource]} (${limit})`)
    this.service = service
    this.resource = resource
    this.limit = limit
  }
}
