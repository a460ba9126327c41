// What a connection or a request is balanced over once its route is chosen: a service port's
// endpoints and its DestinationPolicy settings. Shared by the connection path (TCPRoute
// weights, once per connection) and the request path (HTTPRoute weights, per request).
import type { DestinationSettings, Endpoint, ServicePortInfo, Snapshot, WeightedBackends } from '../../policy/snapshot.ts'

/** Where a connection or request goes: the endpoints to choose from, and how. */
export interface Target {
  /** Balancer key: the service port, or the workload dialled directly. */
  readonly key: string
  /** `<name>.<namespace>`, for telemetry. */
  readonly service: string
  readonly endpoints: readonly Endpoint[]
  readonly settings: DestinationSettings
}

/** One backend by weight (precomputed cumulative sums); undefined when there is none to pick. */
export function pickWeighted(snap: Snapshot, b: WeightedBackends): ServicePortInfo | undefined {
  if (b.total <= 0) return undefined
  const r = Math.random() * b.total
  let i = 0
  while (i < b.cumulative.length - 1 && b.cumulative[i]! <= r) i++
  return snap.servicePorts.get(b.backends[i]!.servicePort)
}

/** A service port as a Target: its endpoints and its Service's settings. */
export function targetOf(snap: Snapshot, port: ServicePortInfo): Target {
  const service = snap.services.get(port.service)
  return {
    key: port.key,
    service: service ? `${service.name}.${service.namespace}` : port.service,
    endpoints: port.endpoints,
    settings: service?.destination ?? snap.defaultDestination,
  }
}
