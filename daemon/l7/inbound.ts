// The destination host's request path, for connections to a local workload's http, http2 or
// grpc port: an HBONE CONNECT stream on :15008 (the peer verified), or PERMISSIVE plaintext
// on :15006 (no peer). Per connection: detect (detect.ts). Per request, in this order:
//   authorize (L7 AuthorizationPolicy; deny: 403 UAEX, the connection stays usable)
//   → client-cert (x-forwarded-client-cert: the client's copy removed, the verified peer set)
//   → upstream (the local workload over a keep-alive pool).
// The next issue's local rate limit (429 RL) goes between authorize and client-cert.
import type { Duplex } from 'node:stream'
import type { Logger } from '../../base/logger.ts'
import type { Protocol, Snapshot } from '../../policy/snapshot.ts'
import type { ConnectionTelemetry } from '../telemetry/connection.ts'
import { versionField, type RequestTelemetry } from '../telemetry/request.ts'
import { formatAuthority } from '../tunnel/authority.ts'
import { admit, type Admitted } from './admit.ts'
import { HttpFront } from './detect.ts'
import type { Exchange } from './exchange.ts'
import type { InboundConn } from './inbound-conn.ts'
import type { L7Limits } from './limits.ts'
import { UpstreamPool } from './pool.ts'
import { pipeline } from './stage.ts'
import { authorize } from './stages/authorize.ts'
import { clientCert } from './stages/client-cert.ts'
import { upstream } from './stages/upstream.ts'

/** Connects to a local workload's port (plain TCP, from the daemon, which is never captured). */
export type WorkloadConnect = (address: string, port: number) => Promise<Duplex>

export interface InboundHttpDeps {
  readonly snapshot: () => Snapshot | undefined
  readonly connect: WorkloadConnect
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
  readonly #run: (x: Exchange<InboundConn>) => Promise<void>

  constructor(deps: InboundHttpDeps) {
    this.#deps = deps
    this.#run = pipeline<Exchange<InboundConn>>([
      authorize,
      clientCert,
      upstream(this.#pool, (x) => {
        const { address, port } = x.conn
        const a = formatAuthority(address, port)
        return { key: a, address: a, connect: () => deps.connect(address, port) }
      }),
    ])
    this.#front = new HttpFront<InboundConn>(deps.limits, {
      request: (req, res, conn) => this.#handle(admit(conn, { version: '1.1', req, res }, this.#facts(conn))),
      upgrade: (req, socket, head, conn) => this.#handle(admit(conn, { version: 'upgrade', req, socket, head }, this.#facts(conn))),
      stream: (stream, headers, conn) => this.#handle(admit(conn, { version: '2', stream, headers }, this.#facts(conn))),
      rejected: (status, reason, conn) => deps.log.debug({ status, reason, workload: conn?.workload.key, peer: conn?.peer }, 'request refused before authorization'),
    })
  }

  /** A connection for a local workload's HTTP port; returns how to end it (a policy revoked it). */
  serve(socket: Duplex, conn: InboundConn, protocol: Protocol): void {
    this.#deps.connections.note()
    this.#front.serve(socket, conn, protocol)
  }

  get connections(): number {
    return this.#front.connections
  }

  drain(): void {
    this.#front.drain()
  }

  destroy(): void {
    this.#front.destroy()
    this.#pool.destroy()
  }

  #facts(conn: InboundConn): Admitted<InboundConn> {
    const deps = this.#deps
    const w = conn.workload
    return {
      snapshot: deps.snapshot,
      telemetry: deps.telemetry,
      traceparent: deps.traceparent,
      limits: deps.limits,
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
