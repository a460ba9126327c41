// Envoy's circuit breakers, per destination service on this host: past a limit the request or
// connection is refused at once (UO: a 503, or a reset TCP connection), never queued. The
// counts live in the HostState, so the limit holds for the host, not per worker.
// hostmesh_circuit_breaker_open says which breakers are at their limit now;
// hostmesh_circuit_breaker_overflow_total counts what they refused.
import { Counter, Gauge, type Registry } from 'prom-client'
import type { HostState } from './host-state.ts'

/**
 * Envoy's resources: `requests` in flight (maxRequests), open upstream `connections` (TCP
 * connections of TCP ports and the L7 pools' upstream connections, maxConnections), and
 * `pending` requests waiting for a connection (maxPendingRequests).
 */
export type BreakerResource = 'requests' | 'connections' | 'pending'

type Labels = 'destination_service' | 'resource'

export class CircuitBreakers {
  readonly #state: HostState
  readonly #open: Gauge<Labels>
  readonly #overflow: Counter<Labels>
  readonly #opened = new Set<string>()

  constructor(state: HostState, registry: Registry) {
    this.#state = state
    this.#open = (registry.getSingleMetric('hostmesh_circuit_breaker_open') as Gauge<Labels> | undefined)
      ?? new Gauge({ name: 'hostmesh_circuit_breaker_open', help: '1 while a destination service\'s circuit breaker is at its limit on this host (DestinationPolicy connectionPool), by resource.', labelNames: ['destination_service', 'resource'], registers: [registry], aggregator: 'max' })
    this.#overflow = (registry.getSingleMetric('hostmesh_circuit_breaker_overflow_total') as Counter<Labels> | undefined)
      ?? new Counter({ name: 'hostmesh_circuit_breaker_overflow_total', help: 'Requests and connections refused (UO) because a destination service\'s circuit breaker was at its limit, by resource.', labelNames: ['destination_service', 'resource'], registers: [registry] })
  }

  /** A slot for one `resource` of `service` (`<name>.<namespace>`); its release, or undefined when the breaker is open. */
  acquire(service: string, resource: BreakerResource, limit: number): (() => void) | undefined {
    const key = `breaker|${resource}|${service}`
    const count = this.#state.count(key)
    const release = count.acquire(limit)
    if (!release) {
      this.#overflow.inc({ destination_service: service, resource })
      this.#mark(key, service, resource, true)
      return undefined
    }
    if (count.value >= limit) this.#mark(key, service, resource, true)
    return () => {
      release()
      if (count.value < limit) this.#mark(key, service, resource, false)
    }
  }

  /** How many of `resource` of `service` are in use now on this host (for /clusters). */
  current(service: string, resource: BreakerResource): number {
    return this.#state.count(`breaker|${resource}|${service}`).value
  }

  /** The gauge changes only when a breaker opens or closes: no label hashing per request. */
  #mark(key: string, service: string, resource: BreakerResource, open: boolean): void {
    if (this.#opened.has(key) === open) return
    if (open) this.#opened.add(key)
    else this.#opened.delete(key)
    this.#open.set({ destination_service: service, resource }, open ? 1 : 0)
  }
}
