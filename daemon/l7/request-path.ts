// What both request paths share around their stage list: the front that detects the protocol
// and parses requests, turning each request into an Exchange (admit.ts), and running the
// pipeline on it. outbound.ts and inbound.ts give the stage list and the connection's facts.
import type { Duplex } from 'node:stream'
import type { Logger } from '../../base/logger.ts'
import type { Protocol } from '../../policy/snapshot.ts'
import type { ConnectionTelemetry } from '../telemetry/connection.ts'
import { admit, type Admitted } from './admit.ts'
import { HttpFront, type FrontHandlers } from './detect.ts'
import type { Exchange } from './exchange.ts'
import type { L7Limits } from './limits.ts'
import type { FrontCounts } from './front-metrics.ts'
import { h2CloseReason } from '../net/h2-errors.ts'

export interface RequestPathOptions<C> {
  /**
   * The limits a connection's requests are parsed with. Each distinct object gets its own
   * front (node's HTTP/1.1 server takes its limits when it is made), so return the same
   * object for connections that share limits.
   */
  readonly limitsOf: (conn: C) => L7Limits
  readonly connections: ConnectionTelemetry
  readonly log: Logger
  /** The ordered stages, as one function (stage.ts's pipeline()). */
  readonly run: (x: Exchange<C>) => Promise<void>
  /** Asked once per connection: what every request on it is admitted with. */
  readonly facts: (conn: C) => Admitted<C>
  /** Log fields that name a connection. */
  readonly describe: (conn: C | undefined) => Record<string, unknown>
  /** The debug line for a request refused before its first stage. */
  readonly refused: string
  /** Where those refusals, and HTTP/2 sessions ended by an error, are counted. */
  readonly counts: FrontCounts
  /** Called when a connection's HTTP/2 session was ended for a flood or a protocol error. */
  readonly abused?: (conn: C, reason: string) => void
}

export class RequestPath<C extends object> {
  readonly #opts: RequestPathOptions<C>
  readonly #handlers: FrontHandlers<C>
  readonly #fronts = new Map<L7Limits, HttpFront<C>>()

  constructor(opts: RequestPathOptions<C>) {
    this.#opts = opts
    const handle = (x: Exchange<C> | undefined): void => {
      if (!x) return
      opts.run(x).catch((err: Error) => {
        opts.log.warn({ err: err.message, ...opts.describe(x.conn) }, 'request failed inside hostmesh')
        x.error = err.message
      })
    }
    const known = new WeakMap<C, Admitted<C>>()
    const facts = (conn: C): Admitted<C> => {
      let f = known.get(conn)
      if (!f) known.set(conn, (f = opts.facts(conn)))
      return f
    }
    this.#handlers = {
      request: (req, res, conn) => handle(admit(conn, { version: '1.1', req, res }, facts(conn))),
      upgrade: (req, socket, head, conn) => handle(admit(conn, { version: 'upgrade', req, socket, head }, facts(conn))),
      stream: (stream, headers, conn) => handle(admit(conn, { version: '2', stream, headers }, facts(conn))),
      rejected: (status, reason, conn) => {
        opts.counts.rejected(status)
        opts.log.debug({ status, reason, ...opts.describe(conn) }, opts.refused)
      },
      sessionFailed: (err, conn) => {
        const reason = h2CloseReason(err)
        if (reason === undefined) return
        opts.counts.sessionClosed(reason)
        opts.abused?.(conn, reason)
        opts.log.debug({ reason, err: err.message, ...opts.describe(conn) }, 'HTTP/2 session ended by an error')
      },
    }
  }

  serve(socket: Duplex, conn: C, protocol: Protocol): void {
    this.#opts.connections.note()
    const limits = this.#opts.limitsOf(conn)
    let front = this.#fronts.get(limits)
    if (!front) this.#fronts.set(limits, (front = new HttpFront<C>(limits, this.#handlers)))
    front.serve(socket, conn, protocol)
  }

  /** Open downstream connections. */
  get connections(): number {
    let n = 0
    for (const f of this.#fronts.values()) n += f.connections
    return n
  }

  /** HTTP/1.1: `Connection: close` on the next response (idle ones close now); HTTP/2: GOAWAY. */
  drain(): void {
    for (const f of this.#fronts.values()) f.drain()
  }

  destroy(): void {
    for (const f of this.#fronts.values()) f.destroy()
  }
}
