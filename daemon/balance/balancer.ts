// Endpoint choice for one connection attempt (TCP ports) or one request (L7 ports), and the
// per-endpoint state it uses: active connections, an EWMA of connect latency, pending requests,
// a peak-EWMA of request latency, consecutive failures and outlier ejection.
//   P2C_EWMA (default, Linkerd's): two random endpoints, the lower cost wins. A connection costs
//     connect ewma × (active + 1); a request costs peak-EWMA request rtt × (pending + 1), as
//     tower's PeakEwma that Linkerd balances HTTP with (see #observe).
//   LEAST_REQUEST (Envoy's): two random endpoints, the fewer active connections (or pending
//     requests) wins.
//   ROUND_ROBIN: a cursor per service port.  RANDOM: uniform.
// The two modes keep separate load and latency because an endpoint may serve a TCP port and an
// L7 port at once: pooled connections to an L7 endpoint are not its load, its requests are.
// Outlier detection (Envoy's), one ejection state per endpoint for both paths:
//   TCP: consecutive connect failures reaching consecutiveGatewayErrors or consecutive5xxErrors
//     (the lower one that is not 0).
//   L7: per-request results, as Envoy's consecutive_5xx and consecutive_gateway_failure with
//     split_external_local_origin_errors off (no response counts as a gateway error): 5xx and
//     no response feed consecutive5xxErrors; 502, 503, 504 and no response feed
//     consecutiveGatewayErrors, which another 5xx breaks; a response under 500 resets both.
// Either ejects the endpoint for baseEjectionTime × times ejected (at most MAX_EJECTION_MS); at
// most maxEjectionPercent of a port's endpoints (but at least one, as Envoy) are ejected, and
// never all of them. State is keyed by endpoint address, so it survives a snapshot swap;
// retain() forgets the endpoints a new snapshot no longer has.
import { LocalHostState, type HostState, type HostStreak } from '../limits/host-state.ts'
import type { DestinationSettings, Endpoint, Snapshot } from '../../policy/snapshot.ts'

export interface EndpointState {
  /** Open connections to the endpoint, over every service port that uses it. */
  active: number
  /** EWMA of connect time, ms; starts at a neutral value so new endpoints get traffic. */
  ewmaMs: number
  /**
   * The three runs below as the host counts them (HostState): with worker threads, a run
   * continues across threads, as Envoy's outlier monitors count for all its workers. The
   * numbers below are this thread's last look at them.
   */
  readonly streaks: { readonly connect: HostStreak; readonly fivexx: HostStreak; readonly gateway: HostStreak }
  /** Consecutive connect failures (reset by a success or an ejection). */
  failures: number
  /** Consecutive requests with a 5xx or no response (reset by a response under 500, or an ejection they caused). */
  consecutive5xx: number
  /** Consecutive requests with a 502, 503, 504 or no response (reset by any other response, or an ejection they caused). */
  consecutiveGatewayErrors: number
  ejections: number
  ejectedUntil: number
  /** Totals since the endpoint was first used: connects that succeeded, and that failed. */
  connects: number
  connectFailures: number
  /** Requests in flight to the endpoint, over every service port that uses it. */
  pending: number
  /** Peak-EWMA request rtt, ms, as of `requestAt`; REQUEST_DEFAULT_RTT_MS before the first response. */
  requestEwmaMs: number
  /** When `requestEwmaMs` was last observed (the balancer's clock); -1 before the first. */
  requestAt: number
  /** Totals since the endpoint was first used: requests that completed, and those with a 5xx or no response. */
  requests: number
  requestFailures: number
  /** No longer in the snapshot: forgotten when its last connection and request end. */
  retired: boolean
}

const EWMA_ALPHA = 0.3
/** Envoy's max_ejection_time default: an ejection never lasts longer. */
export const MAX_EJECTION_MS = 300_000
const INITIAL_EWMA_MS = 1
/** Linkerd's EWMA_DEFAULT_RTT: what an endpoint with no response yet is assumed to take. */
export const REQUEST_DEFAULT_RTT_MS = 30
/** Linkerd's EWMA_DECAY: the time constant of the request-rtt decay. */
export const REQUEST_EWMA_DECAY_MS = 10_000

export type PickMode = 'connection' | 'request'

type OutlierSettings = DestinationSettings['outlierDetection']

export interface RequestOutcome {
  /** From the request's start to its response headers, or to its failure. */
  latencyMs: number
  /**
   * The response status; 0 when none came (connect failure, reset before headers, per-try
   * timeout); undefined when the try says nothing about the endpoint (the client left, the
   * destination's authorization refused the tunnel): it then counts for latency only.
   */
  status: number | undefined
}

export interface BalancerEvents {
  ejected(endpoint: string, servicePort: string, untilMs: number): void
}

export class Balancer {
  readonly #state = new Map<string, EndpointState>()
  readonly #cursors = new Map<string, number>()
  /** Open connections by balancer key (service port, or a workload dialled directly); no zero entries. */
  readonly #activeByPort = new Map<string, number>()
  /** Requests in flight by balancer key; no zero entries. */
  readonly #pendingByPort = new Map<string, number>()
  readonly #events: BalancerEvents | undefined
  readonly #now: () => number
  readonly #host: HostState

  constructor(events?: BalancerEvents, now: () => number = Date.now, host: HostState = new LocalHostState()) {
    this.#events = events
    this.#now = now
    this.#host = host
  }

  /**
   * The endpoint to try next for `portKey`, among those not yet `tried`; undefined when none is
   * left. `mode` is what is being balanced: a TCP connection, or one request of an L7 port.
   */
  pick(portKey: string, endpoints: readonly Endpoint[], settings: DestinationSettings, tried: ReadonlySet<Endpoint> = new Set(), mode: PickMode = 'connection'): Endpoint | undefined {
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
        return mode === 'request' ? this.#p2c(pool, (s) => s.pending) : this.#p2c(pool, (s) => s.active)
      default:
        return mode === 'request'
          ? this.#p2c(pool, (s) => requestRtt(s, now) * (s.pending + 1))
          : this.#p2c(pool, (s) => s.ewmaMs * (s.active + 1))
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
      this.#forgetIfDone(k, s)
    }
  }

  /**
   * A request to `e` for `portKey` (one of `all`) starts; call the returned function when its
   * response headers arrived or it failed. Only the first call counts. The outcome feeds
   * outlier detection under `settings`.
   */
  request(e: Endpoint, portKey: string, all: readonly Endpoint[], settings: DestinationSettings): (outcome: RequestOutcome) => void {
    const k = keyOf(e)
    const s = this.#get(e)
    s.pending++
    this.#pendingByPort.set(portKey, (this.#pendingByPort.get(portKey) ?? 0) + 1)
    let done = false
    return ({ latencyMs, status }) => {
      if (done) return
      done = true
      s.pending--
      const left = this.#pendingByPort.get(portKey)! - 1
      if (left > 0) this.#pendingByPort.set(portKey, left)
      else this.#pendingByPort.delete(portKey)
      s.requests++
      // A failure's latency counts too: tower drops the request's load handle, which records
      // its rtt, whether the response future resolved or failed.
      this.#observe(s, latencyMs)
      if (status !== undefined) this.#outcome(e, s, portKey, all, settings.outlierDetection, status)
      this.#forgetIfDone(k, s)
    }
  }

  /**
   * The request rtt P2C_EWMA compares for `e` now, in ms (the estimate decays while no response
   * comes, as Linkerd's); undefined before its first response.
   */
  requestRttMs(e: Endpoint): number | undefined {
    const s = this.#state.get(keyOf(e))
    return s && s.requestAt >= 0 ? requestRtt(s, this.#now()) : undefined
  }

  /** The connect attempt to `e` succeeded after `ms`. */
  success(e: Endpoint, ms: number): void {
    const s = this.#get(e)
    s.connects++
    s.failures = 0
    s.streaks.connect.reset()
    this.#healthy(s)
    s.ewmaMs = s.ewmaMs * (1 - EWMA_ALPHA) + ms * EWMA_ALPHA
  }

  /** The connect attempt to `e` failed: counts towards ejection. */
  failure(e: Endpoint, portKey: string, all: readonly Endpoint[], settings: DestinationSettings): void {
    const s = this.#get(e)
    s.failures = s.streaks.connect.add()
    s.connectFailures++
    const od = settings.outlierDetection
    // For TCP both detectors count connect failures.
    if ((reached(s.failures, od.consecutiveGatewayErrors) || reached(s.failures, od.consecutive5xxErrors)) && this.#eject(e, s, portKey, all, od)) {
      s.failures = 0
      s.streaks.connect.reset()
    }
  }

  /** For /clusters and tests. */
  state(e: Endpoint): Readonly<EndpointState> | undefined {
    return this.#state.get(keyOf(e))
  }

  /** For /clusters: open connections by balancer key. */
  activeByPort(): ReadonlyMap<string, number> {
    return this.#activeByPort
  }

  /** For /clusters: requests in flight by balancer key. */
  pendingByPort(): ReadonlyMap<string, number> {
    return this.#pendingByPort
  }

  /** Endpoints with state kept now (hostmesh_balancer_endpoints): bounded by the snapshot's, plus retired ones still in use. */
  get size(): number {
    return this.#state.size
  }

  /**
   * After a snapshot swap: forgets the endpoints and round-robin cursors `snapshot` no longer
   * has, so state does not grow with every endpoint that ever existed. An endpoint with open
   * connections or requests in flight is forgotten when the last of them ends (unless a later
   * snapshot brings it back).
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
      if (s.retired && s.active === 0 && s.pending === 0) this.#forget(k, s)
    }
    for (const k of this.#cursors.keys()) if (!snapshot.servicePorts.has(k)) this.#cursors.delete(k)
  }

  /**
   * One request's result, as Envoy's putHttpResponseCode: a 500 counts for consecutive5xxErrors
   * and breaks a run of gateway errors; 502, 503, 504 and no response count for both. The
   * counter that reached its threshold starts over when it ejects (Envoy resets only that one).
   */
  #outcome(e: Endpoint, s: EndpointState, portKey: string, all: readonly Endpoint[], od: OutlierSettings, status: number): void {
    if (status > 0 && status < 500) {
      s.consecutive5xx = 0
      s.consecutiveGatewayErrors = 0
      s.streaks.fivexx.reset()
      s.streaks.gateway.reset()
      this.#healthy(s)
      return
    }
    s.requestFailures++
    s.consecutive5xx = s.streaks.fivexx.add()
    if (status === 0 || status === 502 || status === 503 || status === 504) s.consecutiveGatewayErrors = s.streaks.gateway.add()
    else {
      s.consecutiveGatewayErrors = 0
      s.streaks.gateway.reset()
    }
    const fivexx = reached(s.consecutive5xx, od.consecutive5xxErrors)
    const gateway = reached(s.consecutiveGatewayErrors, od.consecutiveGatewayErrors)
    if (!(fivexx || gateway) || !this.#eject(e, s, portKey, all, od)) return
    if (fivexx) {
      s.consecutive5xx = 0
      s.streaks.fivexx.reset()
    }
    if (gateway) {
      s.consecutiveGatewayErrors = 0
      s.streaks.gateway.reset()
    }
  }

  /**
   * Ejects `e` (one of `all`, for `portKey`) unless it is out already, maxEjectionPercent of
   * `all` are out (but one may always be, as Envoy), or it is the last one in: true when ejected.
   * Refused, the caller's count stays at its threshold, so the next failure tries again.
   */
  #eject(e: Endpoint, s: EndpointState, portKey: string, all: readonly Endpoint[], od: OutlierSettings): boolean {
    const now = this.#now()
    if (s.ejectedUntil > now) return false
    const ejected = all.filter((x) => x !== e && (this.#state.get(keyOf(x))?.ejectedUntil ?? 0) > now).length
    const allowed = Math.max(1, Math.floor((all.length * od.maxEjectionPercent) / 100))
    if (ejected + 1 > allowed || ejected + 1 >= all.length) return false
    s.ejections++
    s.ejectedUntil = now + Math.min(MAX_EJECTION_MS, od.baseEjectionTimeMs * s.ejections)
    this.#events?.ejected(keyOf(e), portKey, s.ejectedUntil)
    return true
  }

  /** A connect or a response that went well: after an ejection, the next one starts shorter (Envoy decays it too). */
  #healthy(s: EndpointState): void {
    if (s.ejections > 0 && this.#now() >= s.ejectedUntil) s.ejections--
  }

  #forgetIfDone(k: string, s: EndpointState): void {
    if (s.retired && s.active === 0 && s.pending === 0 && this.#state.get(k) === s) this.#forget(k, s)
  }

  /** The host's streaks go with the state: a shared slot holding a count is never reclaimed. */
  #forget(k: string, s: EndpointState): void {
    this.#state.delete(k)
    s.streaks.connect.reset()
    s.streaks.fivexx.reset()
    s.streaks.gateway.reset()
  }

  /**
   * Peak-EWMA (tower's, from Finagle): a response slower than the estimate becomes the estimate
   * at once, so a slowing endpoint is avoided quickly; a faster one pulls the estimate toward it
   * by 1 - exp(-elapsed / decay), elapsed being the time since the previous observation, so the
   * estimate recovers over seconds rather than after a number of responses.
   */
  #observe(s: EndpointState, latencyMs: number): void {
    const now = this.#now()
    const rtt = Math.max(0, latencyMs)
    if (s.requestAt < 0 || rtt > s.requestEwmaMs) {
      s.requestEwmaMs = rtt
    } else {
      const w = Math.exp(-Math.max(0, now - s.requestAt) / REQUEST_EWMA_DECAY_MS)
      s.requestEwmaMs = s.requestEwmaMs * w + rtt * (1 - w)
    }
    s.requestAt = now
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

  /**
   * Another worker thread ejected the endpoint keyed `endpoint` until `untilMs`: this thread
   * keeps it out as long. Outlier counts are per thread (as in each Envoy worker), an ejection
   * is host-wide within one message.
   */
  ejectedElsewhere(endpoint: string, untilMs: number): void {
    const s = this.#getKey(endpoint)
    s.ejectedUntil = Math.max(s.ejectedUntil, untilMs)
  }

  #get(e: Endpoint): EndpointState {
    return this.#getKey(keyOf(e))
  }

  #getKey(k: string): EndpointState {
    let s = this.#state.get(k)
    if (!s) {
      s = {
        streaks: { connect: this.#host.streak(`od|connect|${k}`), fivexx: this.#host.streak(`od|5xx|${k}`), gateway: this.#host.streak(`od|gateway|${k}`) },
        active: 0, ewmaMs: INITIAL_EWMA_MS, failures: 0, consecutive5xx: 0, consecutiveGatewayErrors: 0, ejections: 0, ejectedUntil: 0, connects: 0, connectFailures: 0,
        pending: 0, requestEwmaMs: REQUEST_DEFAULT_RTT_MS, requestAt: -1, requests: 0, requestFailures: 0, retired: false,
      }
      this.#state.set(k, s)
    }
    return s
  }
}

/**
 * The request rtt as P2C_EWMA sees it at `now`: between responses it decays toward 0 (tower
 * decays it on every load read), so an endpoint that lost every comparison after one slow
 * response is tried again within seconds instead of never. The default of an endpoint with no
 * response yet does not decay: it has no time of its own to decay from.
 */
function requestRtt(s: EndpointState, now: number): number {
  if (s.requestAt < 0) return s.requestEwmaMs
  return s.requestEwmaMs * Math.exp(-Math.max(0, now - s.requestAt) / REQUEST_EWMA_DECAY_MS)
}

/** 0 turns a detector off (Envoy). */
function reached(count: number, threshold: number): boolean {
  return threshold > 0 && count >= threshold
}

function keyOf(e: Endpoint): string {
  return `${e.identity ?? ''}@${e.address}:${e.port}`
}
