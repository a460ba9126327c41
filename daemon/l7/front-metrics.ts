// What the L7 front refuses before a request reaches its pipeline, counted per direction:
// requests answered by the front itself (400, 405, 408, 431: bad bytes, smuggling attempts,
// slowloris, oversized heads) and HTTP/2 sessions ended by a protocol error or a flood guard
// (rapid reset, CONTINUATION, SETTINGS or PING floods). A client causes these at will, so they
// are counters, and the log says them at debug only.
import { Counter, type Registry } from 'prom-client'
import type { H2CloseReason } from '../net/h2-errors.ts'

export type Direction = 'outbound' | 'inbound'

/** One direction's counters, children resolved once. */
export interface FrontCounts {
  rejected(status: number): void
  sessionClosed(reason: H2CloseReason): void
}


const STATUSES = [400, 405, 408, 431] as const
const REASONS: readonly H2CloseReason[] = ['flood', 'protocol', 'reset_flood', 'other']

export class FrontMetrics {
  readonly #rejected: Counter<'direction' | 'status'>
  readonly #closed: Counter<'direction' | 'reason'>

  constructor(registry: Registry) {
    this.#rejected = new Counter({ name: 'hostmesh_http_rejected_total', help: 'Requests the L7 front answered itself before the pipeline (400 bad request or smuggling attempt, 405 CONNECT, 408 header timeout, 431 head too large), by direction and status.', labelNames: ['direction', 'status'], registers: [registry] })
    this.#closed = new Counter({ name: 'hostmesh_http2_sessions_closed_total', help: 'Downstream HTTP/2 sessions ended by hostmesh for a protocol error or a flood (flood: too many control frames or headers, reset_flood: rapid reset), by direction and reason.', labelNames: ['direction', 'reason'], registers: [registry] })
  }

  of(direction: Direction): FrontCounts {
    const rejected = new Map(STATUSES.map((s) => [s as number, this.#rejected.labels({ direction, status: String(s) })]))
    const closed = new Map(REASONS.map((r) => [r, this.#closed.labels({ direction, reason: r })]))
    for (const c of [...rejected.values(), ...closed.values()]) c.inc(0)
    return {
      rejected: (status) => (rejected.get(status) ?? this.#rejected.labels({ direction, status: String(status) })).inc(),
      sessionClosed: (reason) => closed.get(reason)!.inc(),
    }
  }
}
