// State whose limits must hold for the host as a whole, not per worker (DESIGN.md "L7"): rate
// limit buckets and circuit-breaker counts today; retry budgets and L7 ejections as #13 adds them.
// The request path reaches it only through this interface. One process holds it now
// (LocalHostState); with a worker per core (#14) an implementation backed by the primary or by
// shared memory takes its place, and the stages do not change.
import type { RateBucket } from '../../policy/snapshot.ts'
import { TokenBucket } from './token-bucket.ts'

export interface HostBucket {
  /** Takes a token; false when there is none. */
  take(): boolean
  /** Whole seconds until a token is there (for `retry-after`), at least 1. */
  retryAfterSeconds(): number
  /** A penalty: empties the bucket and owes `n` more (at most a burst), as TokenBucket.drain. */
  drain(n: number): void
}

/** A count of things in use (requests in flight to a service, for a circuit breaker). */
export interface HostCount {
  /** Takes one unless `limit` are in use; the release (call it once) or undefined when full. */
  acquire(limit: number): (() => void) | undefined
  readonly value: number
}

/** A run of events (consecutive failures of an endpoint, for outlier detection), counted for the host. */
export interface HostStreak {
  /** One more: the run's length now. */
  add(): number
  /** The run is broken. */
  reset(): void
  /** The run's length now, as the host counts it. */
  readonly value: number
}

export interface HostState {
  /** The bucket for `key`, created full with `spec` the first time (a changed spec is a new key). */
  bucket(key: string, spec: RateBucket): HostBucket
  /** The streak for `key`; a reset one is forgotten. */
  streak(key: string): HostStreak
  /** The count for `key`; zero counts are forgotten. */
  count(key: string): HostCount
}

/** Buckets that are full again hold nothing worth keeping: swept when there are many. */
const SWEEP_AT = 10_000

export class LocalHostState implements HostState {
  readonly #buckets = new Map<string, TokenBucket>()
  readonly #counts = new Map<string, number>()
  readonly #now: () => number

  constructor(now: () => number = Date.now) {
    this.#now = now
  }

  bucket(key: string, spec: RateBucket): HostBucket {
    let b = this.#buckets.get(key)
    if (!b) {
      if (this.#buckets.size >= SWEEP_AT) this.#sweep()
      // Envoy adds tokensPerFill every fillInterval; the continuous refill is the same rate
      // without the steps.
      b = new TokenBucket(spec.tokensPerFill * 1000 / spec.fillIntervalMs, spec.maxTokens, this.#now)
      this.#buckets.set(key, b)
    }
    const bucket = b
    return {
      take: () => bucket.take(),
      retryAfterSeconds: () => Math.max(1, Math.ceil(bucket.waitMs() / 1000)),
      drain: (n) => bucket.drain(n),
    }
  }

  count(key: string): HostCount {
    const counts = this.#counts
    return {
      get value() { return counts.get(key) ?? 0 },
      acquire: (limit) => {
        const n = counts.get(key) ?? 0
        if (n >= limit) return undefined
        counts.set(key, n + 1)
        let released = false
        return () => {
          if (released) return
          released = true
          const left = (counts.get(key) ?? 1) - 1
          if (left <= 0) counts.delete(key)
          else counts.set(key, left)
        }
      },
    }
  }

  streak(key: string): HostStreak {
    const counts = this.#counts
    // Its own key space: a streak never shares a number with a count of things in use.
    const k = `streak|${key}`
    return {
      add: () => {
        const n = (counts.get(k) ?? 0) + 1
        counts.set(k, n)
        return n
      },
      reset: () => { counts.delete(k) },
      get value() { return counts.get(k) ?? 0 },
    }
  }

  /** Buckets held now (for tests and /stats). */
  get size(): number {
    return this.#buckets.size
  }

  #sweep(): void {
    for (const [k, b] of this.#buckets) if (b.full) this.#buckets.delete(k)
  }
}
