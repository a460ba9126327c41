// What one local workload may hold at once on this host's outbound side (node config
// `outbound.maxConnectionsPerWorkload`, `outbound.maxRequestsPerWorkload`; docs/config.md
// "outbound"): a workload that runs away (a connection leak, a retry storm) gets refusals,
// and the other workloads on the host keep their share of the daemon. The counts live in the
// HostState, so a cap holds for the host, not per worker thread. A refusal is counted
// (hostmesh_workload_limit_refused_total) and logged at most once per window per resource:
// a runaway workload refused thousands of times a second writes one line, and the window's
// summary says how many more.
import { Counter, type Registry } from 'prom-client'
import type { Logger } from '../../base/logger.ts'
import { LogThrottle } from '../../base/throttle.ts'
import type { HostBucket, HostCount, HostState } from './host-state.ts'
import type { RateBucket } from '../../policy/snapshot.ts'
import { DEFAULT_WORKLOAD_CAPS, type WorkloadCaps } from './workload-caps.ts'

/** `connections`: accepted outbound connections still open; `requests`: outbound L7 requests in flight. */
export type WorkloadResource = 'connections' | 'requests'

/** How long a workload whose HTTP/2 session was ended for abuse waits before new outbound connections. */
export const PENALTY_MS = 10_000
const PENALTY_TOKENS = 1_000_000
/**
 * Each workload's penalty bucket: one no ordinary workload empties (100,000 connections a
 * second); a penalty owes it PENALTY_MS of refill.
 */
export const PENALTY_BUCKET: RateBucket = { maxTokens: PENALTY_TOKENS, tokensPerFill: PENALTY_TOKENS * 1000 / PENALTY_MS, fillIntervalMs: 1000 }
/** The host-state key of a workload's penalty bucket. */
export const penaltyKey = (workload: string): string => `workload-penalty|${workload}`

export class WorkloadLimits {
  readonly #state: HostState
  readonly #limit: Record<WorkloadResource, number>
  readonly #refused: Counter<'workload' | 'resource'>
  readonly #throttle: LogThrottle
  /** By resource, then workload: local workloads × 2 entries at most over the daemon's life (workloads the policy has had). */
  readonly #counts: Record<WorkloadResource, Map<string, HostCount>> = { connections: new Map(), requests: new Map() }
  /** By workload, as #counts: admits() runs per connection. */
  readonly #penalties = new Map<string, HostBucket>()

  constructor(state: HostState, registry: Registry, log: Logger, caps: WorkloadCaps = DEFAULT_WORKLOAD_CAPS) {
    this.#state = state
    this.#limit = { connections: caps.maxConnectionsPerWorkload, requests: caps.maxRequestsPerWorkload }
    this.#refused = (registry.getSingleMetric('hostmesh_workload_limit_refused_total') as Counter<'workload' | 'resource'> | undefined)
      ?? new Counter({ name: 'hostmesh_workload_limit_refused_total', help: 'Outbound connections and requests of a local workload refused because it held as many as node config outbound.maxConnectionsPerWorkload / maxRequestsPerWorkload allow (resource connections, requests), or because it waits out a penalty for abusing HTTP/2 (resource abuse), by workload and resource.', labelNames: ['workload', 'resource'], registers: [registry] })
    this.#throttle = new LogThrottle(log, { perWindow: 1 })
  }

  /** One `resource` for `workload` (its key, `namespace/name`): the release (call it once), or undefined when the workload is at its cap. */
  acquire(workload: string, resource: WorkloadResource): (() => void) | undefined {
    const limit = this.#limit[resource]
    const release = this.#count(workload, resource).acquire(limit)
    if (release) return release
    this.#refused.inc({ workload, resource })
    const key = resource === 'connections' ? 'maxConnectionsPerWorkload' : 'maxRequestsPerWorkload'
    // Per workload: a second runaway in the same window is named too (kinds are bounded by the throttle).
    this.#throttle.warn(`workload-${resource}-${workload}`, { workload, [key]: limit }, `outbound ${resource === 'connections' ? 'connection' : 'request'} refused: the workload holds as many as outbound.${key} allows`)
    return undefined
  }

  /**
   * A workload whose HTTP/2 session was ended for a flood or a protocol error: its new outbound
   * connections are refused for PENALTY_MS, host-wide. Without it a workload that floods its own
   * outbound port reconnects at once, and each new session costs the thread the 100–300 ms of
   * frames node parses before its guard trips (RELIABILITY.md, "Hostile input").
   */
  penalize(workload: string, why: string): void {
    this.#penalty(workload).drain(PENALTY_TOKENS)
    this.#throttle.warn(`workload-abuse-${workload}`, { workload, why, seconds: PENALTY_MS / 1000 }, 'outbound HTTP/2 session ended for abuse: the workload\'s new connections are refused for a while')
  }

  /** Whether `workload` may open a connection now (not waiting out a penalty); a refusal is counted. */
  admits(workload: string): boolean {
    if (this.#penalty(workload).take()) return true
    this.#refused.inc({ workload, resource: 'abuse' })
    return false
  }

  #penalty(workload: string): HostBucket {
    // Kept once looked up: a shared bucket finds its slot by the key's hash on every call, so a
    // sweep cannot orphan it, and a thread-local one swept while full is only ever reached
    // through this map, so penalize() and admits() keep using the same one.
    let b = this.#penalties.get(workload)
    if (!b) this.#penalties.set(workload, (b = this.#state.bucket(penaltyKey(workload), PENALTY_BUCKET)))
    return b
  }

  /** How many of `resource` `workload` holds now on this host. */
  current(workload: string, resource: WorkloadResource): number {
    return this.#count(workload, resource).value
  }

  /** The HostCount of one workload and resource, looked up once (no key built): acquire() runs per connection and per request. */
  #count(workload: string, resource: WorkloadResource): HostCount {
    const counts = this.#counts[resource]
    let c = counts.get(workload)
    if (!c) counts.set(workload, (c = this.#state.count(`workload|${resource}|${workload}`)))
    return c
  }

  close(): void {
    this.#throttle.close()
  }
}
