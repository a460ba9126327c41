// The source host's request path, for connections a local workload opened to an http, http2
// or grpc service port. Per connection: detect (detect.ts). Per request, in this order:
//   route (HTTPRoute match; none: 404 NR) → filters (redirect, header modifiers, URL rewrite)
//   → fault (delay DI, abort FI) → timeouts (504 UT) → split (weighted backendRefs)
//   → breaker (maxRequests per destination service; over: 503 UO)
//   → endpoint (load balancer; none: 503 UH)
//   → upstream (pooled HBONE stream to that endpoint, per source workload and endpoint).
// #13's other stages go in DESIGN.md's order: mirror after fault, retry after timeouts.
import type { Duplex } from 'node:stream'
import type { Logger } from '../../base/logger.ts'
import type { Endpoint, Protocol, Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import type { Balancer } from '../balance/balancer.ts'
import type { ConnectionTelemetry } from '../telemetry/connection.ts'
import type { RequestTelemetry } from '../telemetry/request.ts'
import { formatAuthority } from '../tunnel/authority.ts'
import type { Admitted } from './admit.ts'
import type { Exchange } from './exchange.ts'
import type { L7Limits } from './limits.ts'
import type { OutboundConn } from './outbound-conn.ts'
import { UpstreamPool } from './pool.ts'
import { RequestPath } from './request-path.ts'
import { pipeline } from '../../base/stage.ts'
import { breaker } from './stages/breaker.ts'
import { endpoint } from './stages/endpoint.ts'
import type { CircuitBreakers } from '../limits/circuit-breaker.ts'
import { fault } from './stages/fault.ts'
import { filters } from './stages/filters.ts'
import { route } from './stages/route.ts'
import { split } from './stages/split.ts'
import { timeouts } from './stages/timeouts.ts'
import { upstream } from './stages/upstream.ts'

/** Opens a connection to an endpoint as the source workload: an HBONE stream, or TCP outside the mesh. */
export type EndpointConnect = (source: WorkloadInfo, ep: Endpoint, service: string, timeoutMs: number) => Promise<Duplex>

export interface OutboundHttpDeps {
  readonly snapshot: () => Snapshot | undefined
  readonly balancer: Balancer
  /** Per destination service on this host (DestinationPolicy connectionPool). */
  readonly breakers: CircuitBreakers
  readonly connect: EndpointConnect
  readonly telemetry: RequestTelemetry
  readonly connections: ConnectionTelemetry
  readonly limits: L7Limits
  /** Create a W3C traceparent when a request has none. */
  readonly traceparent: boolean
  readonly log: Logger
}

export class OutboundHttp {
  readonly #pool = new UpstreamPool()
  readonly #path: RequestPath<OutboundConn>

  constructor(deps: OutboundHttpDeps) {
    const pool = this.#pool
    this.#path = new RequestPath<OutboundConn>({
      limitsOf: () => deps.limits, connections: deps.connections, log: deps.log,
      run: pipeline<Exchange<OutboundConn>>([
        route,
        filters,
        fault,
        timeouts,
        split,
        breaker(deps.breakers),
        endpoint(deps.balancer),
        upstream(pool, (x) => {
          const ep = x.endpoint!
          const t = x.target!
          return {
            key: `${x.conn.source.key}|${formatAuthority(ep.address, ep.port)}`,
            address: formatAuthority(ep.address, ep.port),
            connect: () => deps.connect(x.conn.source, ep, t.service, t.settings.connectionPool.connectTimeoutMs),
            observe: deps.balancer.request(ep, t.key),
          }
        }),
      ]),
      facts: (conn) => facts(deps, conn),
      describe: (conn) => ({ workload: conn?.source.key }),
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

  destroy(): void {
    this.#path.destroy()
    this.#pool.destroy()
  }
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
