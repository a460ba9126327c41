// DestinationPolicy `rateLimit` on the destination host (Envoy's local rate limit): one token
// bucket per workload port, and, with `identity`, one more per calling identity (Linkerd's
// HTTPLocalRateLimitPolicy), checked first so that a caller over its own share is refused
// before it spends the shared bucket. Buckets live in the HostState (host-state.ts).
import { Counter, type Registry } from 'prom-client'
import { addressKey } from '../../policy/ip.ts'
import type { RateBucket, Snapshot } from '../../policy/snapshot.ts'
import type { HostState } from '../limits/host-state.ts'
import type { InboundConn } from './inbound-conn.ts'

export type RateVerdict =
  | { readonly ok: true }
  | { readonly ok: false; readonly scope: 'total' | 'identity'; readonly retryAfterSeconds: number; readonly policy: string }

export class RateLimiter {
  readonly #state: HostState
  readonly #limited: Counter<'destination_workload' | 'destination_workload_namespace' | 'scope'>

  constructor(state: HostState, registry: Registry) {
    this.#state = state
    this.#limited = (registry.getSingleMetric('hostmesh_rate_limited_total') as Counter<'destination_workload' | 'destination_workload_namespace' | 'scope'> | undefined)
      ?? new Counter({ name: 'hostmesh_rate_limited_total', help: 'Requests refused with 429 by a DestinationPolicy rateLimit on this host, by destination workload and bucket (total: the workload port\'s, identity: the caller\'s own).', labelNames: ['destination_workload', 'destination_workload_namespace', 'scope'], registers: [registry] })
  }

  check(snap: Snapshot, c: InboundConn): RateVerdict {
    const rl = snap.workloadRateLimits.get(addressKey(c.address, c.port))
    if (!rl) return { ok: true }
    const base = `${rl.policy}|${addressKey(c.address, c.port)}`
    const limit = rl.limit
    if (limit.identity) {
      const b = this.#state.bucket(`${base}|id:${c.peer ?? '-'}|${specKey(limit.identity)}`, limit.identity)
      if (!b.take()) return this.#refused(c, 'identity', b.retryAfterSeconds(), rl.policy)
    }
    const b = this.#state.bucket(`${base}|${specKey(limit)}`, limit)
    if (!b.take()) return this.#refused(c, 'total', b.retryAfterSeconds(), rl.policy)
    return { ok: true }
  }

  #refused(c: InboundConn, scope: 'total' | 'identity', retryAfterSeconds: number, policy: string): RateVerdict {
    this.#limited.inc({ destination_workload: c.workload.name, destination_workload_namespace: c.workload.namespace, scope })
    return { ok: false, scope, retryAfterSeconds, policy }
  }
}

function specKey(b: RateBucket): string {
  return `${b.maxTokens}/${b.tokensPerFill}/${b.fillIntervalMs}`
}
