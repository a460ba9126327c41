// What both request paths share around their stage list: the front that detects the protocol
// and parses requests, turning each request into an Exchange (admit.ts), and running the
// pipeline on it. outbound.ts and inbound.ts give the stage list and the connection's facts.
import type { Duplex } from 'node:stream'
import type { Logger } from '../../base/logger.ts'
import type { Protocol } from '../../policy/snapshot.ts'
import type { ConnectionTelemetry } from '../telemetry/connection.ts'
import { admit, type Admitted } from './admit.ts'
import { HttpFront } from './detect.ts'
import type { Exchange } from './exchange.ts'
import type { L7Limits } from './limits.ts'

export interface RequestPathOptions<C> {
  readonly limits: L7Limits
  readonly connections: ConnectionTelemetry
  readonly log: Logger
  /** The ordered stages, as one function (stage.ts's pipeline()). */
  readonly run: (x: Exchange<C>) => Promise<void>
  readonly facts: (conn: C) => Admitted<C>
  /** Log fields that name a connection. */
  readonly describe: (conn: C | undefined) => Record<string, unknown>
}

export class RequestPath<C> {
  readonly #opts: RequestPathOptions<C>
  readonly #front: HttpFront<C>

  constructor(opts: RequestPathOptions<C>) {
    this.#opts = opts
    const handle = (x: Exchange<C> | undefined): void => {
      if (!x) return
      opts.run(x).catch((err: Error) => {
        opts.log.warn({ err: err.message, ...opts.describe(x.conn) }, 'request failed inside hostmesh')
        x.error = err.message
      })
    }
    this.#front = new HttpFront<C>(opts.limits, {
      request: (req, res, conn) => handle(admit(conn, { version: '1.1', req, res }, opts.facts(conn))),
      upgrade: (req, socket, head, conn) => handle(admit(conn, { version: 'upgrade', req, socket, head }, opts.facts(conn))),
      stream: (stream, headers, conn) => handle(admit(conn, { version: '2', stream, headers }, opts.facts(conn))),
      rejected: (status, reason, conn) => opts.log.debug({ status, reason, ...opts.describe(conn) }, 'request refused before the pipeline'),
    })
  }

  serve(socket: Duplex, conn: C, protocol: Protocol): void {
    this.#opts.connections.note()
    this.#front.serve(socket, conn, protocol)
  }

  /** Open downstream connections. */
  get connections(): number {
    return this.#front.connections
  }

  /** HTTP/1.1: `Connection: close` on the next response (idle ones close now); HTTP/2: GOAWAY. */
  drain(): void {
    this.#front.drain()
  }

  destroy(): void {
    this.#front.destroy()
  }
}
