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
import type { HostCount, HostState } from './host-state.ts'
import { DEFAULT_WORKLOAD_CAPS, type WorkloadCaps } from './workload-caps.ts'

/** `connections`: accepted outbound connections still open; `requests`: outbound L7 requests in flight. */
export type WorkloadResource = 'connections' | 'requests'

export class WorkloadLimits {
  readonly #state: HostState
  readonly #limit: Record<WorkloadResource, number>
  readonly #refused: Counter<'workload' | 'resource'>
  readonly #throttle: LogThrottle
  /** By `resource|workload`: local workloads × 2 entries at most over the daemon's life (workloads the policy has had). */
  readonly #counts = new Map<string, HostCount>()

  constructor(state: HostState, registry: Registry, log: Logger, caps: WorkloadCaps = DEFAULT_WORKLOAD_CAPS) {
    this.#state = state
    this.#limit = { connections: caps.maxConnectionsPerWorkload, requests: caps.maxRequestsPerWorkload }
    this.#refused = (registry.getSingleMetric('hostmesh_workload_limit_refused_total') as Counter<'workload' | 'resource'> | undefined)
      ?? new Counter({ name: 'hostmesh_workload_limit_refused_total', help: 'Outbound connections and requests of a local workload refused because it held as many as node config outbound.maxConnectionsPerWorkload / maxRequestsPerWorkload allow, by workload and resource.', labelNames: ['workload', 'resource'], registers: [registry] })
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

  /** How many of `resource` `workload` holds now on this host. */
  current(workload: string, resource: WorkloadResource): number {
    return this.#count(workload, resource).value
  }

  /** The HostCount of one workload and resource, looked up once: acquire() runs per connection and per request. */
  #count(workload: string, resource: WorkloadResource): HostCount {
    const key = `${resource}|${workload}`
    let c = this.#counts.get(key)
    if (!c) this.#counts.set(key, (c = this.#state.count(`workload|${key}`)))
    return c
  }

  close(): void {
    this.#throttle.close()
  }
}
