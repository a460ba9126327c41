// What any one peer may cost the HBONE server (:15008), whatever certificate it holds: TCP
// connections (in all, and per source address), TLS handshakes in progress (a queue, not a
// refusal: a burst of new sessions from a restarting peer waits its turn), new connections per
// second per source address and new sessions per second per (identity, source address) (token
// buckets that an abusive session drains further), and open tunnels (in all, per source).
// Connections, tunnels and the rate buckets hold for the host: they are counted in the
// HostState, which worker threads share (docs/workers.md). Handshakes in progress are per
// thread: each thread's event loop does its own TLS work, and the queue of waiting handshakes
// is that loop's. The HostState bounds its own size (daemon/limits/host-state.ts); the
// handshake counts hold an entry only while a handshake is in progress.
import { LocalHostState, type HostBucket, type HostState } from '../limits/host-state.ts'

export interface HboneLimits {
  /** TCP connections at :15008, handshaking or not. */
  readonly maxConnections: number
  readonly maxConnectionsPerSource: number
  /** TLS handshakes in progress; more wait (within handshakeTimeoutMs). */
  readonly maxHandshakes: number
  readonly maxHandshakesPerSource: number
  /** From accept to a verified peer, queueing included. */
  readonly handshakeTimeoutMs: number
  /** New connections per source address, and new sessions per (peer identity, source address). */
  readonly newConnectionsPerSecond: number
  readonly newConnectionsBurst: number
  /** Open tunnels (CONNECT streams spliced to a workload), in all and per peer host (source address). */
  readonly maxTunnels: number
  readonly maxTunnelsPerPeer: number
  /** Per session: streams refused (bad requests, resets before the answer, denials) before it is closed. */
  readonly refusedStreamsPerSecond: number
  readonly refusedStreamsBurst: number
  /** A session with no tunnel for this long is closed. */
  readonly idleSessionTimeoutMs: number
  /** HTTP/2 PING every keepaliveIntervalMs; no answer within keepaliveTimeoutMs: the session is dead. */
  readonly keepaliveIntervalMs: number
  readonly keepaliveTimeoutMs: number
}

/** docs/config.md ("hbone") gives the reasoning for each. */
export const DEFAULT_HBONE_LIMITS: HboneLimits = Object.freeze({
  maxConnections: 4096,
  maxConnectionsPerSource: 512,
  maxHandshakes: 128,
  maxHandshakesPerSource: 32,
  handshakeTimeoutMs: 10_000,
  newConnectionsPerSecond: 100,
  newConnectionsBurst: 1000,
  maxTunnels: 32_768,
  maxTunnelsPerPeer: 8192,
  refusedStreamsPerSecond: 10,
  refusedStreamsBurst: 100,
  idleSessionTimeoutMs: 10 * 60_000,
  keepaliveIntervalMs: 10_000,
  keepaliveTimeoutMs: 10_000,
})

export type ConnectionRefusal = 'connections' | 'connections_per_source' | 'connection_rate'
export type TunnelRefusal = 'tunnels' | 'tunnels_per_peer'

export type Admitted<R> = { readonly ok: true; readonly release: () => void } | { readonly ok: false; readonly reason: R }

/** Tokens an abusive session costs its source and identity: ten seconds of their refill. */
const PENALTY_SECONDS = 10

export class Admission {
  readonly limits: HboneLimits
  readonly #host: HostState
  readonly #handshakes = new Counts()
  readonly #waiting: { readonly source: string; readonly grant: (release: () => void) => void }[] = []

  constructor(limits: HboneLimits = DEFAULT_HBONE_LIMITS, now: () => number = Date.now, host: HostState = new LocalHostState(now)) {
    this.limits = limits
    this.#host = host
  }

  /** A new TCP connection from `source`. */
  connection(source: string): Admitted<ConnectionRefusal> {
    const l = this.limits
    const all = this.#host.count('hbone|connections').acquire(l.maxConnections)
    if (!all) return { ok: false, reason: 'connections' }
    const mine = this.#host.count(`hbone|connections|${source}`).acquire(l.maxConnectionsPerSource)
    if (!mine) {
      all()
      return { ok: false, reason: 'connections_per_source' }
    }
    if (!this.#bucket(`src:${source}`).take()) {
      mine()
      all()
      return { ok: false, reason: 'connection_rate' }
    }
    return { ok: true, release: both(mine, all) }
  }

  /**
   * A handshake slot for `source`: now, or when one frees up. Rejects when `signal` aborts
   * first (the connection closed or its handshake time ran out while it waited).
   */
  handshake(source: string, signal: AbortSignal): Promise<() => void> {
    if (this.#handshakeFree(source)) return Promise.resolve(this.#handshakes.add(source, this.#next))
    return new Promise((resolve, reject) => {
      const waiter = { source, grant: (release: () => void) => { signal.removeEventListener('abort', abort); resolve(release) } }
      const abort = (): void => {
        const i = this.#waiting.indexOf(waiter)
        if (i >= 0) this.#waiting.splice(i, 1)
        reject(signal.reason)
      }
      if (signal.aborted) return abort()
      signal.addEventListener('abort', abort, { once: true })
      this.#waiting.push(waiter)
    })
  }

  /**
   * A new session by a verified peer identity from `source`. Keyed by both: an identity is a
   * service account, shared by every replica on every host, and one peer host's behaviour
   * must not cost the others theirs.
   */
  session(source: string, identity: string): boolean {
    return this.#bucket(peerKey(source, identity)).take()
  }

  /** A CONNECT stream about to be spliced to a workload, from a peer host at `source`. */
  tunnel(source: string): Admitted<TunnelRefusal> {
    const l = this.limits
    const all = this.#host.count('hbone|tunnels').acquire(l.maxTunnels)
    if (!all) return { ok: false, reason: 'tunnels' }
    const mine = this.#host.count(`hbone|tunnels|${source}`).acquire(l.maxTunnelsPerPeer)
    if (!mine) {
      all()
      return { ok: false, reason: 'tunnels_per_peer' }
    }
    return { ok: true, release: both(mine, all) }
  }

  /**
   * A session was ended for abuse (`whole`: its source address waits before new connections
   * too) or for too many refusals (only that identity from that source waits before new
   * sessions).
   */
  penalize(source: string, identity: string, whole: boolean): void {
    const tokens = this.limits.newConnectionsPerSecond * PENALTY_SECONDS
    if (whole) this.#bucket(`src:${source}`).drain(tokens)
    this.#bucket(peerKey(source, identity)).drain(tokens)
  }

  #handshakeFree(source: string): boolean {
    return this.#handshakes.total < this.limits.maxHandshakes && this.#handshakes.of(source) < this.limits.maxHandshakesPerSource
  }

  /** Called whenever a handshake slot frees: the oldest waiter that fits gets it. */
  #next = (): void => {
    const i = this.#waiting.findIndex((w) => this.#handshakeFree(w.source))
    if (i < 0) return
    const [w] = this.#waiting.splice(i, 1)
    w!.grant(this.#handshakes.add(w!.source, this.#next))
  }

  #bucket(key: string): HostBucket {
    const l = this.limits
    return this.#host.bucket(`hbone|${key}`, { maxTokens: l.newConnectionsBurst, tokensPerFill: l.newConnectionsPerSecond, fillIntervalMs: 1000 })
  }
}

function peerKey(source: string, identity: string): string {
  return `peer:${identity}@${source}`
}

/** One release for two counts, safe to call more than once. */
function both(a: () => void, b: () => void): () => void {
  let done = false
  return () => {
    if (done) return
    done = true
    a()
    b()
  }
}

/** Counts per key plus a total; a key is forgotten at zero. */
class Counts {
  readonly #byKey = new Map<string, number>()
  total = 0

  of(key: string): number {
    return this.#byKey.get(key) ?? 0
  }

  /** Counts one for `key`; the returned release undoes it once (then runs `after`). */
  add(key: string, after?: () => void): () => void {
    this.#byKey.set(key, this.of(key) + 1)
    this.total++
    let done = false
    return () => {
      if (done) return
      done = true
      const n = this.of(key) - 1
      if (n > 0) this.#byKey.set(key, n)
      else this.#byKey.delete(key)
      this.total--
      after?.()
    }
  }
}
