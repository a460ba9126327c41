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
import { admit, type Admitted } from './admit.ts'
import { HttpFront, type FrontHandlers } from './detect.ts'
import { withoutEmptyWrites } from './empty-writes.ts'
import type { Exchange } from './exchange.ts'
import type { InboundConn } from './inbound-conn.ts'
import type { L7Limits } from './limits.ts'
import { UpstreamPool } from './pool.ts'
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
  readonly traceparent: boolean
  readonly log: Logger
}

export class InboundHttp {
  readonly #deps: InboundHttpDeps
  readonly #pool = new UpstreamPool()
  readonly #front: HttpFront<InboundConn>
  /** For HBONE streams, whose requests a source hostmesh has already checked and extended. */
  readonly #peerFront: HttpFront<InboundConn>
  readonly #peerLimits: L7Limits
  readonly #run: (x: Exchange<InboundConn>) => Promise<void>

  constructor(deps: InboundHttpDeps) {
    this.#deps = deps
    this.#run = pipeline<Exchange<InboundConn>>([
      authorize,
      rateLimit(deps.limiter),
      clientCert,
      upstream(this.#pool, (x) => {
        const { address, port } = x.conn
        const a = formatAuthority(address, port)
        return { key: a, address: a, connect: () => deps.connect(address, port) }
      }),
    ])
    const handlers: FrontHandlers<InboundConn> = {
      request: (req, res, conn) => this.#handle(admit(conn, { version: '1.1', req, res }, this.#facts(conn))),
      upgrade: (req, socket, head, conn) => this.#handle(admit(conn, { version: 'upgrade', req, socket, head }, this.#facts(conn))),
      stream: (stream, headers, conn) => this.#handle(admit(conn, { version: '2', stream, headers }, this.#facts(conn))),
      rejected: (status, reason, conn) => deps.log.debug({ status, reason, workload: conn?.workload.key, peer: conn?.peer }, 'request refused before authorization'),
    }
    this.#peerLimits = { ...deps.limits, maxRequestHeaders: deps.limits.maxRequestHeaders + FROM_PEER.headers, maxRequestHeadersBytes: deps.limits.maxRequestHeadersBytes + FROM_PEER.bytes }
    this.#front = new HttpFront<InboundConn>(deps.limits, handlers)
    this.#peerFront = new HttpFront<InboundConn>(this.#peerLimits, handlers)
  }

  /** A connection for a local workload's HTTP port; returns how to end it (a policy revoked it). */
  serve(socket: Duplex, conn: InboundConn, protocol: Protocol): void {
    this.#deps.connections.note()
    // An HBONE stream: responses written by node:http must not end in an empty chunk (empty-writes.ts).
    const front = conn.peer !== undefined ? this.#peerFront : this.#front
    front.serve(withoutEmptyWrites(socket), conn, protocol)
  }

  get connections(): number {
    return this.#front.connections + this.#peerFront.connections
  }

  drain(): void {
    this.#front.drain()
    this.#peerFront.drain()
  }

  destroy(): void {
    this.#front.destroy()
    this.#peerFront.destroy()
    this.#pool.destroy()
  }

  #facts(conn: InboundConn): Admitted<InboundConn> {
    const deps = this.#deps
    const w = conn.workload
    return {
      snapshot: deps.snapshot,
      telemetry: deps.telemetry,
      traceparent: deps.traceparent,
      limits: conn.peer !== undefined ? this.#peerLimits : deps.limits,
      start: () => ({
        reporter: 'destination', listener: conn.listener,
        src: conn.src,
        dst: { address: formatAuthority(conn.address, conn.port), workload: w, principal: w.identity, ...versionField(w.labels), ...(conn.service ? { service: conn.service } : {}) },
        security: conn.peer !== undefined ? 'mutual_tls' : 'none',
      }),
      forwardedFor: conn.clientAddress,
    }
  }

  #handle(x: Exchange<InboundConn> | undefined): void {
    if (!x) return
    this.#run(x).catch((err: Error) => {
      this.#deps.log.warn({ err: err.message, workload: x.conn.workload.key }, 'request failed inside hostmesh')
      x.error = err.message
    })
  }
}
