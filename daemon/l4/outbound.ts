// The source host's per-connection path, for every connection a local workload opens (its
// outbound listener, listeners/outbound.ts, names the workload). First the workload's cap
// (outbound.maxConnectionsPerWorkload: over it the connection is reset, after
// outbound.refusalDelay, before it has a record, so a runaway workload costs no access-log line
// per refusal; limits/workload-limits.ts counts and logs them). Then, in this order:
//   from-workload (a container's listener: only the container's own source address; else NR)
//   → original-dst (SO_ORIGINAL_DST; none: NR)
//   → redirected (a direct dial of the capture port is no workload's: NR)
//   → lookup (the snapshot: a Service port, a mesh workload's own address, or unknown)
//       unknown: passthrough (ALLOW_ANY: plain TCP to the original destination; REGISTRY_ONLY:
//       NR) → splice
//   → http-service (an http/http2/grpc port: the connection goes to the request path,
//     l7/outbound.ts, which routes each request)
//   → tcp-route (TCPRoute weights, once per connection)
//   → breaker (a Service port: maxConnections per destination service, a slot held until the
//     connection ends; over: reset, UO)
//   → endpoint (load balancer; HBONE tunnel as the source workload, or plain TCP to an
//     endpoint outside the mesh; a failed connect tries another, up to MAX_CONNECT_ATTEMPTS;
//     the destination's 401: UAEX, else UF)
//   → splice (both ways until either ends).
// Every connection has one record (telemetry/connection.ts) from accept to its end, whatever
// stage ends it. This file and its stages never import listeners/ or run/.
import type { Socket } from 'node:net'
import type { Logger } from '../../base/logger.ts'
import { fork, pipeline } from '../../base/stage.ts'
import type { Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import type { Balancer } from '../balance/balancer.ts'
import type { OutboundHttp } from '../l7/outbound.ts'
import type { CircuitBreakers } from '../limits/circuit-breaker.ts'
import type { WorkloadLimits } from '../limits/workload-limits.ts'
import type { DelayedRefusals } from './delayed-refusals.ts'
import { remoteOf, type ConnectionTelemetry } from '../telemetry/connection.ts'
import type { HboneClientPool } from '../tunnel/client-pool.ts'
import type { OutboundConnection } from './outbound-connection.ts'
import { breaker } from './stages/breaker.ts'
import { endpoint } from './stages/endpoint.ts'
import { fromWorkload } from './stages/from-workload.ts'
import { httpService } from './stages/http-service.ts'
import { lookup } from './stages/lookup.ts'
import { originalDst } from './stages/original-dst.ts'
import { passthrough } from './stages/passthrough.ts'
import { redirected } from './stages/redirected.ts'
import { splice } from './stages/splice.ts'
import { tcpRoute } from './stages/tcp-route.ts'

export interface OutboundPathDeps {
  readonly snapshot: () => Snapshot | undefined
  readonly pool: HboneClientPool
  readonly balancer: Balancer
  /** Per destination service on this host (DestinationPolicy connectionPool), shared with the request path. */
  readonly breakers: CircuitBreakers
  readonly outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY'
  readonly log: Logger
  readonly telemetry: ConnectionTelemetry
  readonly connectTimeoutMs?: number
  /** The request path, for http/http2/grpc service ports. */
  readonly http: OutboundHttp
  /** Per local workload on this host (node config `outbound`). */
  readonly workloads: WorkloadLimits
  /** How a connection over its workload's cap is reset (outbound.refusalDelay). */
  readonly refusals: DelayedRefusals
}

/** Runs the path for each connection `source`'s listener (on `capturePort`) accepts. */
export type OutboundPath = (socket: Socket, source: WorkloadInfo, capturePort: number) => void

export function outboundPath(deps: OutboundPathDeps): OutboundPath {
  const run = pipeline<OutboundConnection>([
    fromWorkload,
    originalDst,
    redirected,
    lookup(deps.snapshot),
    fork((x) => x.destination!.kind === 'unknown', [
      passthrough(deps.outboundTrafficPolicy, deps.connectTimeoutMs ?? 5000),
      splice,
    ]),
    httpService(deps.http),
    tcpRoute,
    breaker(deps.breakers, deps.log),
    endpoint(deps.balancer, deps.pool),
    splice,
  ])
  return (socket, source, capturePort) => {
    if (!deps.workloads.admits(source.key)) return deps.refusals.refuse(socket)
    const release = deps.workloads.acquire(source.key, 'connections')
    if (!release) return deps.refusals.refuse(socket)
    socket.once('close', release)
    // One record per accepted connection, whatever becomes of it (docs/mesh.md, "Access log").
    const record = deps.telemetry.begin({
      reporter: 'source', listener: 'outbound',
      src: { address: remoteOf(socket), workload: source, principal: source.identity },
      dst: {}, security: 'none',
    })
    const x: OutboundConnection = { socket, source, capturePort, record, log: deps.log }
    run(x).catch((err: Error) => {
      deps.log.error({ workload: source.key, err: err.message }, 'outbound connection failed inside hostmesh; closing')
      socket.destroy()
    })
  }
}
