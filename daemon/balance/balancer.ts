// Endpoint choice for one connection attempt, and the per-endpoint state it uses: active
// connections, an EWMA of connect latency, consecutive failures and outlier ejection.
//   P2C_EWMA (default, Linkerd's): two random endpoints, the lower ewma × (active + 1) wins.
//   LEAST_REQUEST (Envoy's): two random endpoints, the fewer active connections wins.
//   ROUND_ROBIN: a cursor per service port.  RANDOM: uniform.
// Outlier detection (Envoy's, for TCP): consecutive connect failures reaching
// consecutiveGatewayErrors or consecutive5xxErrors (the lower one that is not 0) eject the endpoint
// for baseEjectionTime × times ejected; at most maxEjectionPercent of a port's endpoints (but
// at least one, as Envoy) are ejected, and never all of them. State is keyed by endpoint address, so it survives a
// snapshot swap; retain() forgets the endpoints a new snapshot no longer has.
import type { DestinationSettings, Endpoint, Snapshot } from '../../policy/snapshot.ts'

export interface EndpointState {
  /** Open connections to the endpoint, over every service port that uses it. */
  active: number
  /** EWMA of connect time, ms; starts at a neutral value so new endpoints get traffic. */
  ewmaMs: number
  /** Consecutive connect failures (reset by a success or an ejection). */
  failures: number
  ejections: number
  ejectedUntil: number
  /** Totals since the endpoint was first used: connects that succeeded, and that failed. */
  connects: number
  connectFailures: number
  /** No longer in the snapshot: forgotten when its last connection ends. */
  retired: boolean
}

const EWMA_ALPHA = 0.3
/** Envoy's max_ejection_time default: an ejection never lasts longer. */
export const MAX_EJECTION_MS = 300_000
const INITIAL_EWMA_MS = 1

export interface BalancerEvents {
  ejected(endpoint: string, servicePort: string, untilMs: number): void
}

export class Balancer {
  readonly #state = new Map<string, EndpointState>()
  readonly #cursors = new Map<string, number>()
  /** Open connections by balancer key (service port, or a workload dialled directly); no zero entries. */
  readonly #activeByPort = new Map<string, number>()
  readonly #events: BalancerEvents | undefined
  readonly #now: () => number

  constructor(events?: BalancerEvents, now: () => number = Date.now) {
    this.#events = events
    this.#now = now
  }

  /** The endpoint to try next for `portKey`, among those not yet `tried`; undefined when none is left. */
  pick(portKey: string, endpoints: readonly Endpoint[], settings: DestinationSettings, tried: ReadonlySet<Endpoint> = new Set()): Endpoint | undefined {
    const left = endpoints.filter((e) => !tried.has(e))
    if (left.length === 0) return undefined
    const now = this.#now()
    const healthy = left.filter((e) => (this.#state.get(keyOf(e))?.ejectedUntil ?? 0) <= now)
    // Never all: with every candidate ejected, use them anyway.
    const pool = healthy.length > 0 ? healthy : left
    switch (settings.loadBalancer) {
      case 'RANDOM':
        return pool[Math.floor(Math.random() * pool.length)]
      case 'ROUND_ROBIN': {
        const i = this.#cursors.get(portKey) ?? 0
        this.#cursors.set(portKey, i + 1)
        return pool[i % pool.length]
      }
      case 'LEAST_REQUEST':
        return this.#p2c(pool, (s) => s.active)
      default:
        return this.#p2c(pool, (s) => s.ewmaMs * (s.active + 1))
    }
  }

  /** A connection to `e` for `portKey` starts; call the returned function when it ends. */
  begin(e: Endpoint, portKey: string): () => void {
    const k = keyOf(e)
    const s = this.#get(e)
    s.active++
    this.#activeByPort.set(portKey, (this.#activeByPort.get(portKey) ?? 0) + 1)
    let done = false
    return () => {
      if (done) return
      done = true
      s.active--
      const left = this.#activeByPort.get(portKey)! - 1
      if (left > 0) this.#activeByPort.set(portKey, left)
      else this.#activeByPort.delete(portKey)
      if (s.active === 0 && s.retired && this.#state.get(k) === s) this.#state.delete(k)
    }
  }

  /** The connect attempt to `e` succeeded after `ms`. */
  success(e: Endpoint, ms: number): void {
    const s = this.#get(e)
    s.connects++
    s.failures = 0
    // Healthy again after an ejection: the next one starts shorter (Envoy decays it too).
    if (s.ejections > 0 && this.#now() >= s.ejectedUntil) s.ejections--
    s.ewmaMs = s.ewmaMs * (1 - EWMA_ALPHA) + ms * EWMA_ALPHA
  }

  /** The connect attempt to `e` failed: counts towards ejection. */
  failure(e: Endpoint, portKey: string, all: readonly Endpoint[], settings: DestinationSettings): void {
    const s = this.#get(e)
    s.failures++
    s.connectFailures++
    const od = settings.outlierDetection
    // 0 turns a detector off (Envoy); for TCP both count connect failures.
    const thresholds = [od.consecutiveGatewayErrors, od.consecutive5xxErrors].filter((n) => n > 0)
    if (thresholds.length === 0 || s.failures < Math.min(...thresholds)) return
    const now = this.#now()
    if (s.ejectedUntil > now) return
    const ejected = all.filter((x) => x !== e && (this.#state.get(keyOf(x))?.ejectedUntil ?? 0) > now).length
    // maxEjectionPercent of the endpoints, but at least one (as Envoy), and never the last healthy one.
    const allowed = Math.max(1, Math.floor((all.length * od.maxEjectionPercent) / 100))
    if (ejected + 1 > allowed || ejected + 1 >= all.length) return
    s.ejections++
    s.failures = 0
    s.ejectedUntil = now + Math.min(MAX_EJECTION_MS, od.baseEjectionTimeMs * s.ejections)
    this.#events?.ejected(keyOf(e), portKey, s.ejectedUntil)
  }

  /** For /clusters and tests. */
  state(e: Endpoint): Readonly<EndpointState> | undefined {
    return this.#state.get(keyOf(e))
  }

  /** For /clusters: open connections by balancer key. */
  activeByPort(): ReadonlyMap<string, number> {
    return this.#activeByPort
  }

  /**
   * After a snapshot swap: forgets the endpoints and round-robin cursors `snapshot` no longer
   * has, so state does not grow with every endpoint that ever existed. An endpoint with open
   * connections is forgotten when its last one ends (unless a later snapshot brings it back).
   * Kept: every service port's endpoints and every workload address:port (a workload dialled
   * directly is balanced as an endpoint of its own).
   */
  retain(snapshot: Snapshot): void {
    const live = new Set<string>()
    for (const sp of snapshot.servicePorts.values()) for (const e of sp.endpoints) live.add(keyOf(e))
    for (const w of snapshot.workloads.values()) {
      for (const address of w.addresses) for (const { port } of w.ports) live.add(keyOf({ address, port, identity: w.identity }))
    }
    for (const [k, s] of this.#state) {
      s.retired = !live.has(k)
      if (s.retired && s.active === 0) this.#state.delete(k)
    }
    for (const k of this.#cursors.keys()) if (!snapshot.servicePorts.has(k)) this.#cursors.delete(k)
  }

  #p2c(pool: readonly Endpoint[], cost: (s: EndpointState) => number): Endpoint {
    if (pool.length === 1) return pool[0]!
    const i = Math.floor(Math.random() * pool.length)
    let j = Math.floor(Math.random() * (pool.length - 1))
    if (j >= i) j++
    const a = pool[i]!
    const b = pool[j]!
    return cost(this.#get(a)) <= cost(this.#get(b)) ? a : b
  }

  #get(e: Endpoint): EndpointState {
    const k = keyOf(e)
    let s = this.#state.get(k)
    if (!s) this.#state.set(k, (s = { active: 0, ewmaMs: INITIAL_EWMA_MS, failures: 0, ejections: 0, ejectedUntil: 0, connects: 0, connectFailures: 0, retired: false }))
    return s
  }
}

function keyOf(e: Endpoint): string {
  return `${e.identity ?? ''}@${e.address}:${e.port}`
}
