// The source host's request path, for connections a local workload opened to an http, http2
// or grpc service port. Per connection: detect (detect.ts). Per request, in this order:
//   workload-limit (the source workload's outbound.maxRequestsPerWorkload; over: 503 UO)
//   → route (HTTPRoute match; none: 404 NR) → filters (redirect, header modifiers, URL rewrite)
//   → fault (delay DI, abort FI)
//   → mirror (RequestMirror: a copy to the mirror service, never waited for; stages/mirror.ts)
//   → timeouts (request: 504 UT) → split (weighted backendRefs)
//   → retry (each try under backendRequest; retries within attempts and the service's budget, URX)
//   → breaker (maxRequests per destination service; over: 503 UO)
//   → endpoint (load balancer; none: 503 UH)
//   → upstream (pooled HBONE stream to that endpoint, per source workload and endpoint; the
//     service's maxPendingRequests while a request waits for a connection, and maxConnections
//     for the connections the pools open: over either, 503 UO).
import type { Duplex } from 'node:stream'
import type { Logger } from '../../base/logger.ts'
import type { DestinationSettings, Endpoint, Protocol, Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import { countedConnect } from '../limits/counted-connect.ts'
import type { Balancer } from '../balance/balancer.ts'
import type { Target } from '../balance/target.ts'
import type { ConnectionTelemetry } from '../telemetry/connection.ts'
import type { RequestTelemetry } from '../telemetry/request.ts'
import { formatAuthority } from '../tunnel/authority.ts'
import type { Admitted } from './admit.ts'
import type { Exchange } from './exchange.ts'
import type { L7Limits } from './limits.ts'
import type { MirrorMetrics } from './mirror-metrics.ts'
import { MirrorSlots } from './mirror-slots.ts'
import type { HostState } from '../limits/host-state.ts'
import type { OutboundConn } from './outbound-conn.ts'
import { UpstreamPool } from './pool.ts'
import { RequestPath } from './request-path.ts'
import type { FrontMetrics } from './front-metrics.ts'
import { pipeline } from '../../base/stage.ts'
import { breaker } from './stages/breaker.ts'
import { endpoint } from './stages/endpoint.ts'
import type { CircuitBreakers } from '../limits/circuit-breaker.ts'
import type { RetryBudgets } from '../limits/retry-budget.ts'
import type { RetryMetrics } from './retry-metrics.ts'
import { fault } from './stages/fault.ts'
import { filters } from './stages/filters.ts'
import { mirror } from './stages/mirror.ts'
import { route } from './stages/route.ts'
import { retry } from './stages/retry.ts'
import { split } from './stages/split.ts'
import { timeouts } from './stages/timeouts.ts'
import { upstream, type UpstreamChoice } from './stages/upstream.ts'
import { workloadLimit } from './stages/workload-limit.ts'
import type { WorkloadLimits } from '../limits/workload-limits.ts'

/** Opens a connection to an endpoint as the source workload: an HBONE stream, or TCP outside the mesh. */
export type EndpointConnect = (source: WorkloadInfo, ep: Endpoint, service: string, timeoutMs: number) => Promise<Duplex>

export interface OutboundHttpDeps {
  readonly snapshot: () => Snapshot | undefined
  readonly balancer: Balancer
  /** Per destination service on this host (DestinationPolicy connectionPool). */
  readonly breakers: CircuitBreakers
  /** Per destination service on this host (DestinationPolicy retryBudget). */
  readonly retryBudgets: RetryBudgets
  readonly retries: RetryMetrics
  /** hostmesh_mirror_requests_total (RequestMirror copies). */
  readonly mirrors: MirrorMetrics
  readonly connect: EndpointConnect
  readonly telemetry: RequestTelemetry
  readonly connections: ConnectionTelemetry
  readonly limits: L7Limits
  /** The L7 front's refusals, by direction (front-metrics.ts). */
  readonly front: FrontMetrics
  /** Create a W3C traceparent when a request has none. */
  readonly traceparent: boolean
  readonly log: Logger
  /** Where host-wide counts live (the mirror caps): shared memory with worker threads. */
  readonly hostState?: HostState
  /** Per local workload on this host (node config `outbound`). */
  readonly workloads: WorkloadLimits
}

export class OutboundHttp {
  readonly #pool = new UpstreamPool()
  readonly #path: RequestPath<OutboundConn>

  constructor(deps: OutboundHttpDeps) {
    const pool = this.#pool
    const via = (source: WorkloadInfo, ep: Endpoint, t: Target): UpstreamChoice => ({
      // Per service too: the pool's connections count against that service's maxConnections.
      key: `${source.key}|${t.service}|${formatAuthority(ep.address, ep.port)}`,
      address: formatAuthority(ep.address, ep.port),
      // The pool keeps the connect function of its first request for every connection it opens
      // to this key, across reloads: the limits are read from the snapshot in force at each dial.
      connect: countedConnect(deps.breakers, t.service, () => connectionPoolOf(deps.snapshot(), t.key, t.settings.connectionPool).maxConnections,
        () => deps.connect(source, ep, t.service, connectionPoolOf(deps.snapshot(), t.key, t.settings.connectionPool).connectTimeoutMs)),
      observe: deps.balancer.request(ep, t.key, t.endpoints, t.settings),
      pending: () => deps.breakers.acquire(t.service, 'pending', t.settings.connectionPool.maxPendingRequests),
    })
    this.#path = new RequestPath<OutboundConn>({
      limitsOf: () => deps.limits, connections: deps.connections, log: deps.log, counts: deps.front.of('outbound'),
      run: pipeline<Exchange<OutboundConn>>([
        workloadLimit(deps.workloads),
        route,
        filters,
        fault,
        mirror({ pool, balancer: deps.balancer, slots: new MirrorSlots(undefined, deps.hostState), metrics: deps.mirrors, log: deps.log, via }),
        timeouts,
        split,
        retry(deps.retryBudgets, deps.retries),
        breaker(deps.breakers),
        endpoint(deps.balancer),
        upstream(pool, (x) => via(x.conn.source, x.endpoint!, x.target!)),
      ]),
      facts: (conn) => facts(deps, conn),
      describe: (conn) => ({ workload: conn?.source.key }),
      abused: (conn, reason) => deps.workloads.penalize(conn.source.key, reason),
      refused: 'request refused before the pipeline',
    })
  }

  /** A workload's connection to an HTTP service port. */
  serve(socket: Duplex, conn: OutboundConn, protocol: Protocol): void {
    this.#path.serve(socket, conn, protocol)
  }

  get connections(): number {
    return this.#path.connections
  }

  drain(): void {
    this.#path.drain()
  }

  /** Once no connection is left to serve: the pooled upstream connections go (idle by then). */
  destroyUpstreams(): void {
    this.#pool.destroy()
  }

  destroy(): void {
    this.#path.destroy()
    this.#pool.destroy()
  }
}

/**
 * The connectionPool settings of a service port's Service now: the snapshot's defaults when it
 * is gone, and the ones the connection was opened with when there is no snapshot at all.
 */
function connectionPoolOf(snap: Snapshot | undefined, servicePort: string, opened: DestinationSettings['connectionPool']): DestinationSettings['connectionPool'] {
  if (!snap) return opened
  const sp = snap.servicePorts.get(servicePort)
  return (sp && snap.services.get(sp.service)?.destination.connectionPool) ?? snap.defaultDestination.connectionPool
}

function facts(deps: OutboundHttpDeps, conn: OutboundConn): Admitted<OutboundConn> {
  return {
    snapshot: deps.snapshot,
    telemetry: deps.telemetry,
    traceparent: deps.traceparent,
    limits: deps.limits,
    start: (snap) => {
      const sp = snap.servicePorts.get(conn.servicePort)
      const svc = sp ? snap.services.get(sp.service) : undefined
      return {
        reporter: 'source', listener: 'outbound',
        src: { ...(conn.clientAddress ? { address: conn.clientAddress } : {}), workload: conn.source, principal: conn.source.identity },
        dst: { address: conn.dialled, ...(svc ? { service: `${svc.name}.${svc.namespace}` } : {}) },
        security: 'mutual_tls',
      }
    },
    forwardedFor: conn.clientAddress,
  }
}
