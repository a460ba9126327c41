// The destination host's request path, for connections to a local workload's http, http2 or
// grpc port: an HBONE CONNECT stream on :15008 (the peer verified), or PERMISSIVE plaintext
// on :15006 (no peer). Per connection: detect (detect.ts). Per request, in this order:
//   authorize (L7 AuthorizationPolicy; deny: 403 UAEX, the connection stays usable)
//   → rate-limit (DestinationPolicy rateLimit, per workload port and per caller; 429 RL)
//   → client-cert (x-forwarded-client-cert: the client's copy removed, the verified peer set)
//   → upstream (the local workload over a keep-alive pool).
import type { Duplex } from 'node:stream'
import type { Logger } from '../../base/logger.ts'
import type { Protocol, Snapshot } from '../../policy/snapshot.ts'
import type { ConnectionTelemetry } from '../telemetry/connection.ts'
import { versionField, type RequestTelemetry } from '../telemetry/request.ts'
import { formatAuthority } from '../tunnel/authority.ts'
import type { Admitted } from './admit.ts'
import { withoutEmptyWrites } from './empty-writes.ts'
import type { Exchange } from './exchange.ts'
import type { InboundConn } from './inbound-conn.ts'
import type { L7Limits } from './limits.ts'
import { UpstreamPool } from './pool.ts'
import { RequestPath } from './request-path.ts'
import type { FrontMetrics } from './front-metrics.ts'
import { pipeline } from '../../base/stage.ts'
import { authorize } from './stages/authorize.ts'
import { clientCert } from './stages/client-cert.ts'
import { rateLimit } from './stages/rate-limit.ts'
import type { RateLimiter } from './rate-limiter.ts'
import { upstream } from './stages/upstream.ts'

/**
 * Room for what a source hostmesh adds to a request before it crosses (x-forwarded-for,
 * x-forwarded-proto, x-request-id, traceparent, and node's Connection and framing fields),
 * with some to spare: a request within the limits where the client sent it must not go over
 * them on the way. Plaintext clients get the limits as configured.
 */
const FROM_PEER = { headers: 8, bytes: 1024 }

/** Connects to a local workload's port (plain TCP, from the daemon, which is never captured). */
export type WorkloadConnect = (address: string, port: number) => Promise<Duplex>

export interface InboundHttpDeps {
  readonly snapshot: () => Snapshot | undefined
  readonly connect: WorkloadConnect
  /** DestinationPolicy rateLimit, over the host's buckets. */
  readonly limiter: RateLimiter
  readonly telemetry: RequestTelemetry
  readonly connections: ConnectionTelemetry
  readonly limits: L7Limits
  /** The L7 front's refusals, by direction (front-metrics.ts). */
  readonly front: FrontMetrics
  readonly traceparent: boolean
  readonly log: Logger
}

export class InboundHttp {
  readonly #pool = new UpstreamPool()
  readonly #path: RequestPath<InboundConn>

  constructor(deps: InboundHttpDeps) {
    /** For HBONE streams, whose requests a source hostmesh has already checked and extended. */
    const peerLimits: L7Limits = { ...deps.limits, maxRequestHeaders: deps.limits.maxRequestHeaders + FROM_PEER.headers, maxRequestHeadersBytes: deps.limits.maxRequestHeadersBytes + FROM_PEER.bytes }
    const limitsOf = (conn: InboundConn): L7Limits => (conn.peer !== undefined ? peerLimits : deps.limits)
    this.#path = new RequestPath<InboundConn>({
      limitsOf, connections: deps.connections, log: deps.log, counts: deps.front.of('inbound'),
      run: pipeline<Exchange<InboundConn>>([
        authorize,
        rateLimit(deps.limiter),
        clientCert,
        upstream(this.#pool, (x) => {
          const { address, port } = x.conn
          const a = formatAuthority(address, port)
          return { key: a, address: a, connect: () => deps.connect(address, port) }
        }),
      ]),
      facts: (conn) => facts(deps, conn, limitsOf(conn)),
      describe: (conn) => ({ workload: conn?.workload.key, peer: conn?.peer }),
      refused: 'request refused before authorization',
    })
  }

  /** A connection for a local workload's HTTP port. */
  serve(socket: Duplex, conn: InboundConn, protocol: Protocol): void {
    // An HBONE stream: responses written by node:http must not end in an empty chunk (empty-writes.ts).
    this.#path.serve(withoutEmptyWrites(socket), conn, protocol)
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

function facts(deps: InboundHttpDeps, conn: InboundConn, limits: L7Limits): Admitted<InboundConn> {
  const w = conn.workload
  return {
    snapshot: deps.snapshot,
    telemetry: deps.telemetry,
    traceparent: deps.traceparent,
    limits,
    start: () => ({
      reporter: 'destination', listener: conn.listener,
      src: conn.src,
      dst: { address: formatAuthority(conn.address, conn.port), workload: w, principal: w.identity, ...versionField(w.labels), ...(conn.service ? { service: conn.service } : {}) },
      security: conn.peer !== undefined ? 'mutual_tls' : 'none',
    }),
    forwardedFor: conn.clientAddress,
  }
}
