// /clusters: what Envoy's /clusters shows, as JSON. One cluster per service port of the
// snapshot in force (named by its key, `<namespace>/<service>:<port>`, the balancer key and
// the `service_port` label of hostmesh_outlier_ejections_total), with its load-balancing and
// outlier settings, its destination service's circuit breakers and retry budget, the open
// connections it carries, and each endpoint ("host") with the balancer's state: health
// (ejected or not), consecutive connect failures, 5xx and gateway errors, connect-latency
// EWMA, open connections, connect totals, request-rtt peak-EWMA and requests in flight.
import type { Balancer } from '../balance/balancer.ts'
import type { BreakerResource, CircuitBreakers } from '../limits/circuit-breaker.ts'
import { formatAuthority } from '../tunnel/authority.ts'
import type { DestinationSettings, Endpoint, ServicePortInfo, Snapshot } from '../../policy/snapshot.ts'
import type { AdminServer } from './server.ts'

export interface HostView {
  /** `ip:port` (`[ip6]:port`) the balancer connects to. */
  readonly address: string
  /** Mesh workload key (`<namespace>/<name>`); null for an endpoint outside the mesh. */
  readonly workload: string | null
  readonly identity: string | null
  /** The node whose :15008 carries the tunnel; null outside the mesh. */
  readonly node: string | null
  /** EJECTED while outlier detection keeps the endpoint out, else HEALTHY (Envoy's words). */
  readonly health: 'HEALTHY' | 'EJECTED'
  readonly ejectedUntil: string | null
  /** How many times it was ejected, less the decay of healthy spells (the ejection-time multiplier). */
  readonly ejections: number
  /** Consecutive connect failures (TCP ports). */
  readonly consecutiveFailures: number
  /** Consecutive requests answered 5xx or not answered (consecutive5xxErrors counts these). */
  readonly consecutive5xx: number
  /** Consecutive requests answered 502, 503, 504 or not answered (consecutiveGatewayErrors counts these). */
  readonly consecutiveGatewayErrors: number
  /** Connect-latency EWMA in ms (P2C_EWMA's cost); null before the first connect. */
  readonly ewmaConnectMs: number | null
  /** Open connections to this endpoint, over every service port that uses it. */
  readonly activeConnections: number
  readonly connects: number
  readonly connectFailures: number
  /** Request rtt in ms as P2C_EWMA compares it now (peak-EWMA, decaying); null before the first response. */
  readonly requestEwmaMs: number | null
  /** Requests in flight to this endpoint, over every service port that uses it. */
  readonly pending: number
}

/** One circuit breaker of the destination service on this host. */
export interface BreakerView {
  readonly limit: number
  /** In use now, over every port and caller of the service on this host. */
  readonly current: number
  /** At its limit: the next one is refused (UO). */
  readonly open: boolean
}

/** DestinationPolicy connectionPool field ← circuit-breaker resource. */
const BREAKERS = { maxConnections: 'connections', maxPendingRequests: 'pending', maxRequests: 'requests' } as const satisfies Record<string, BreakerResource>

export interface ClusterView {
  readonly name: string
  /** `<name>.<namespace>`, as the destination_service metric label. */
  readonly service: string
  readonly port: number
  readonly portName: string | null
  readonly protocol: string
  /** The service's virtual addresses with this port; empty for a route-only backend. */
  readonly addresses: readonly string[]
  /** Endpoints outside the mesh (plain TCP). */
  readonly external: boolean
  readonly loadBalancer: DestinationSettings['loadBalancer']
  /** The DestinationPolicy in force, or "default". */
  readonly destinationPolicy: string
  readonly outlierDetection: DestinationSettings['outlierDetection']
  /** The destination service's breakers on this host: shared by all its ports, so the same in each of its clusters. */
  readonly circuitBreakers: { readonly [F in keyof typeof BREAKERS]: BreakerView }
  /** The destination service's retry budget; `remaining` is null while unknown (no request yet). */
  readonly retryBudget: { readonly percent: number; readonly minRetriesPerSecond: number; readonly ttlMs: number; readonly remaining: number | null }
  /** Where connections to this port go instead of its own hosts: a TCPRoute's weighted backends. */
  readonly route: { readonly kind: 'tcp'; readonly name: string; readonly backends: readonly { readonly cluster: string; readonly weight: number }[] } | { readonly kind: 'http'; readonly rules: number } | null
  /** Open connections balanced over this cluster's hosts. */
  readonly activeConnections: number
  /** Requests in flight balanced over this cluster's hosts. */
  readonly pendingRequests: number
  readonly hosts: readonly HostView[]
}

export interface ClustersView {
  readonly generation: number
  readonly clusters: readonly ClusterView[]
  /**
   * Open connections under a key that is no service port of this snapshot: a workload
   * dialled by its own address (`workload:<namespace>/<name>:<port>`), or a service port that
   * was removed while its connections stay open.
   */
  readonly otherConnections: readonly { readonly name: string; readonly activeConnections: number }[]
}

/** Per destination service (`<name>.<namespace>`), what is live besides the balancer's state. */
export interface ServiceCounts {
  readonly breakers: Pick<CircuitBreakers, 'current'>
  /** Retries the service's budget allows now; null when unknown. */
  readonly retryBudgetRemaining?: (service: string) => number | null
}

/** `view`: the host's clusters now (clustersView, merged with the worker threads' when there are some). */
export function registerClusters(admin: AdminServer, view: () => Promise<ClustersView> | ClustersView): void {
  admin.route('GET', '/clusters', async () => ({ status: 200, body: await view() }))
}

export function clustersView(snapshot: Snapshot | undefined, balancer: Balancer, counts: ServiceCounts, now = Date.now()): ClustersView {
  const active = balancer.activeByPort()
  const pending = balancer.pendingByPort()
  const clusters = [...(snapshot?.servicePorts.values() ?? [])]
    .sort((a, b) => (a.key < b.key ? -1 : a.key > b.key ? 1 : 0))
    .map((sp) => clusterView(snapshot!, sp, balancer, counts, active.get(sp.key) ?? 0, pending.get(sp.key) ?? 0, now))
  const otherConnections = [...active].filter(([k]) => !snapshot?.servicePorts.has(k)).sort().map(([name, n]) => ({ name, activeConnections: n }))
  return { generation: snapshot?.generation ?? 0, clusters, otherConnections }
}

function clusterView(snapshot: Snapshot, sp: ServicePortInfo, balancer: Balancer, counts: ServiceCounts, activeConnections: number, pendingRequests: number, now: number): ClusterView {
  const svc = snapshot.services.get(sp.service)
  const settings = svc?.destination ?? snapshot.defaultDestination
  const route = sp.route
  const rb = settings.retryBudget
  // The name the breakers and budgets are kept under (Target.service).
  const service = svc ? `${svc.name}.${svc.namespace}` : sp.service
  const breaker = (field: keyof typeof BREAKERS): BreakerView => {
    const limit = settings.connectionPool[field]
    const current = counts.breakers.current(service, BREAKERS[field])
    return { limit, current, open: current >= limit }
  }
  return {
    name: sp.key,
    service,
    port: sp.port,
    portName: sp.name ?? null,
    protocol: sp.protocol,
    addresses: (svc?.addresses ?? []).map((a) => formatAuthority(a, sp.port)),
    external: svc?.external ?? false,
    loadBalancer: settings.loadBalancer,
    destinationPolicy: settings.source,
    outlierDetection: settings.outlierDetection,
    circuitBreakers: { maxConnections: breaker('maxConnections'), maxPendingRequests: breaker('maxPendingRequests'), maxRequests: breaker('maxRequests') },
    retryBudget: { percent: rb.percent, minRetriesPerSecond: rb.minRetriesPerSecond, ttlMs: rb.ttlMs, remaining: counts.retryBudgetRemaining?.(service) ?? null },
    route: route === undefined ? null
      : route.kind === 'tcp' ? { kind: 'tcp', name: route.route, backends: route.backends.backends.map((b) => ({ cluster: b.servicePort, weight: b.weight })) }
        : { kind: 'http', rules: route.rules.length },
    activeConnections,
    pendingRequests,
    hosts: sp.endpoints.map((e) => hostView(e, balancer, now)),
  }
}

function hostView(e: Endpoint, balancer: Balancer, now: number): HostView {
  const s = balancer.state(e)
  const rtt = balancer.requestRttMs(e)
  const ejected = s !== undefined && s.ejectedUntil > now
  return {
    address: formatAuthority(e.address, e.port),
    workload: e.workload ?? null,
    identity: e.identity ?? null,
    node: e.node?.name ?? null,
    health: ejected ? 'EJECTED' : 'HEALTHY',
    ejectedUntil: ejected ? new Date(s.ejectedUntil).toISOString() : null,
    ejections: s?.ejections ?? 0,
    // The host's runs (shared by worker threads), not this thread's last look at them.
    consecutiveFailures: s?.streaks.connect.value ?? 0,
    consecutive5xx: s?.streaks.fivexx.value ?? 0,
    consecutiveGatewayErrors: s?.streaks.gateway.value ?? 0,
    ewmaConnectMs: s && s.connects > 0 ? Math.round(s.ewmaMs * 100) / 100 : null,
    activeConnections: s?.active ?? 0,
    connects: s?.connects ?? 0,
    connectFailures: s?.connectFailures ?? 0,
    requestEwmaMs: rtt === undefined ? null : Math.round(rtt * 100) / 100,
    pending: s?.pending ?? 0,
  }
}
