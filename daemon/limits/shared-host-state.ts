// HostState in shared memory, for worker threads (docs/workers.md): every thread that holds a
// view on the same SharedArrayBuffer sees the same breaker counts and rate-limit buckets, so a
// limit holds for the host, not per worker. The memory is one fixed table (no allocation on
// the request path, a bound whatever keys callers make up):
//   - open addressing over `slots` entries, keyed by a 64-bit hash of the key string (two
//     independent 32-bit FNV-1a halves; a collision would merge two keys' limits, at odds of
//     about n² / 2^65);
//   - per slot: a state word (empty, being claimed, in use), the key hash, a count, and a
//     token bucket (tokens and the time they were counted, as float64); a per-slot lock word
//     guards taking a count or a token and reclaiming the slot, and a release is one atomic
//     subtraction;
//   - when the table is three-quarters full, slots whose count is 0 and whose bucket is full
//     again are reclaimed (they hold nothing worth keeping, as LocalHostState sweeps); each
//     use looks its key up again, so a reclaimed key simply starts afresh. A table that is
//     still full gives new keys one shared overflow slot: their callers share one bucket (never
//     an unlimited one) and one count.
// Times are Date.now(): performance.now() has a different origin in every thread.
import type { RateBucket } from '../../policy/snapshot.ts'
import type { HostBucket, HostCount, HostState, HostStreak } from './host-state.ts'

const EMPTY = 0
const CLAIMING = 1
const USED = 2

/** Int32 fields per slot: state, hash hi, hash lo, count, lock. */
const I = 5
const STATE = 0
const HI = 1
const LO = 2
const COUNT = 3
const LOCK = 4
/** Float64 fields per slot: tokens, when they were counted (ms), refill per ms, burst. */
const F = 4
const TOKENS = 0
const AT = 1
const PER_MS = 2
const BURST = 3

/** At most one sweep of the table per thread in this many ms. */
const SWEEP_EVERY_MS = 100

/** The default table: 65,536 keys, 3.3 MiB. */
export const DEFAULT_SLOTS = 1 << 16

export class SharedHostState implements HostState {
  /** What to post to a worker: `new SharedHostState(buffer)` there sees the same state. */
  readonly buffer: SharedArrayBuffer
  readonly #ints: Int32Array
  readonly #floats: Float64Array
  readonly #slots: number
  readonly #now: () => number
  /** When this thread last swept: at most one sweep per SWEEP_EVERY_MS, so a flood of new keys costs one pass, not one per key. */
  #sweptAt = -Infinity

  /** A new table of `slots` (a power of two), or a view on `buffer` made by another thread. */
  constructor(from: number | SharedArrayBuffer = DEFAULT_SLOTS, now: () => number = Date.now) {
    const slots = typeof from === 'number' ? from : from.byteLength / (I * 4 + F * 8)
    if (!Number.isInteger(slots) || slots < 4 || (slots & (slots - 1)) !== 0) throw new RangeError(`slots must be a power of two ≥ 4, got ${slots}`)
    // Floats first, so they are 8-byte aligned.
    this.buffer = typeof from === 'number' ? new SharedArrayBuffer(slots * (I * 4 + F * 8)) : from
    this.#floats = new Float64Array(this.buffer, 0, slots * F)
    this.#ints = new Int32Array(this.buffer, slots * F * 8, slots * I)
    this.#slots = slots
    this.#now = now
  }

  bucket(key: string, spec: RateBucket): HostBucket {
    const [hi, lo] = hash(key)
    const perMs = spec.tokensPerFill / spec.fillIntervalMs
    const burst = spec.maxTokens
    return {
      take: () => this.#locked(hi, lo, (s) => {
        const tokens = this.#refill(s, perMs, burst)
        if (tokens < 1) return false
        this.#floats[s * F + TOKENS] = tokens - 1
        return true
      }),
      retryAfterSeconds: () => this.#locked(hi, lo, (s) => {
        const tokens = this.#refill(s, perMs, burst)
        return Math.max(1, Math.ceil(tokens >= 1 ? 0 : (1 - tokens) / perMs / 1000))
      }),
      drain: (n) => this.#locked(hi, lo, (s) => {
        const tokens = this.#refill(s, perMs, burst)
        this.#floats[s * F + TOKENS] = Math.max(-burst, Math.min(tokens, 0) - n)
      }),
    }
  }

  count(key: string): HostCount {
    const [hi, lo] = hash(key)
    const ints = this.#ints
    const slotOf = (): number => this.#find(hi, lo, false)
    return {
      get value() {
        const s = slotOf()
        return s < 0 ? 0 : Atomics.load(ints, s * I + COUNT)
      },
      acquire: (limit) => {
        const at = this.#locked(hi, lo, (s) => {
          const i = s * I + COUNT
          if (Atomics.load(ints, i) >= limit) return -1
          Atomics.add(ints, i, 1)
          return i
        })
        if (at < 0) return undefined
        let released = false
        return () => {
          if (released) return
          released = true
          // A slot whose count is above 0 is never reclaimed: it is still this key's.
          Atomics.sub(ints, at, 1)
        }
      },
    }
  }

  streak(key: string): HostStreak {
    const [hi, lo] = hash(`streak|${key}`)
    const ints = this.#ints
    const find = (): number => this.#find(hi, lo, false)
    return {
      // One atomic add on the key's slot; a slot whose count is above 0 is never reclaimed.
      add: () => this.#locked(hi, lo, (s) => Atomics.add(ints, s * I + COUNT, 1) + 1),
      // Every good response resets its endpoint's streaks: a lock-free look first, so an
      // unbroken run of successes costs a probe and a load. The store itself goes under the
      // slot's lock, which checks the slot is still this key's (a sweep may have moved it).
      reset: () => {
        const s = find()
        if (s <= 0 || Atomics.load(ints, s * I + COUNT) === 0) return
        this.#locked(hi, lo, (slot) => { Atomics.store(ints, slot * I + COUNT, 0) })
      },
      get value() {
        const s = find()
        return s < 0 ? 0 : Atomics.load(ints, s * I + COUNT)
      },
    }
  }

  /** Slots in use now (for tests and /stats). */
  get size(): number {
    let n = 0
    for (let s = 0; s < this.#slots; s++) if (Atomics.load(this.#ints, s * I + STATE) === USED) n++
    return n
  }

  #owns(s: number, hi: number, lo: number): boolean {
    const ints = this.#ints
    return Atomics.load(ints, s * I + STATE) === USED && ints[s * I + HI] === hi && ints[s * I + LO] === lo
  }

  /** The slot of a key: found, or claimed when `claim` (else -1). Full table: the overflow slot. */
  #find(hi: number, lo: number, claim: boolean): number {
    const ints = this.#ints
    const mask = this.#slots - 1
    for (let attempt = 0; attempt < 2; attempt++) {
      // Slot 0 is the overflow slot: probing starts at 1.
      let s = (lo & mask) || 1
      for (let probe = 0; probe < this.#slots - 1; probe++, s = ((s + 1) & mask) || 1) {
        const base = s * I
        let state = Atomics.load(ints, base + STATE)
        while (state === CLAIMING) state = waitClaim(ints, base + STATE)
        if (state === USED) {
          if (ints[base + HI] === hi && ints[base + LO] === lo) return s
          continue
        }
        if (!claim) return -1
        if (Atomics.compareExchange(ints, base + STATE, EMPTY, CLAIMING) !== EMPTY) {
          // Another thread claimed it first: look at it again.
          s = (s - 1) & mask
          continue
        }
        ints[base + HI] = hi
        ints[base + LO] = lo
        Atomics.store(ints, base + COUNT, 0)
        this.#floats[s * F + AT] = -1
        Atomics.store(ints, base + STATE, USED)
        Atomics.notify(ints, base + STATE)
        this.#sweepIfCrowded()
        return s
      }
      if (!claim) return -1
      // Full: reclaim what holds nothing, then try once more.
      if (!this.#sweep()) break
    }
    return 0
  }

  /**
   * Runs `fn` on the key's slot under the slot's lock. The slot is checked again once locked:
   * a sweep (which takes the same lock) may have given it to another key in between.
   */
  #locked<T>(hi: number, lo: number, fn: (s: number) => T): T {
    const ints = this.#ints
    for (;;) {
      const s = this.#find(hi, lo, true)
      const lock = s * I + LOCK
      while (Atomics.compareExchange(ints, lock, 0, 1) !== 0) Atomics.wait(ints, lock, 1, 1)
      try {
        if (s === 0 || this.#owns(s, hi, lo)) return fn(s)
      } finally {
        Atomics.store(ints, lock, 0)
        Atomics.notify(ints, lock, 1)
      }
    }
  }

  /** The slot's tokens now (under its lock); a bucket's first use fills it with this spec. */
  #refill(s: number, perMs: number, burst: number): number {
    const f = this.#floats
    const base = s * F
    const now = this.#now()
    if (f[base + AT]! < 0) {
      f[base + TOKENS] = burst
      f[base + PER_MS] = perMs
      f[base + BURST] = burst
    } else {
      f[base + TOKENS] = Math.min(burst, f[base + TOKENS]! + Math.max(0, now - f[base + AT]!) * perMs)
    }
    f[base + AT] = now
    return f[base + TOKENS]!
  }

  #sweepIfCrowded(): void {
    // Cheap check first: a sample of 64 slots says whether the table looks crowded.
    let used = 0
    const step = Math.max(1, this.#slots >> 6)
    for (let s = 0; s < this.#slots; s += step) if (Atomics.load(this.#ints, s * I + STATE) === USED) used++
    if (used * 4 >= Math.min(64, this.#slots) * 3) this.#sweep()
  }

  /** Sweeps unless this thread did within SWEEP_EVERY_MS; whether it did. */
  #sweep(): boolean {
    const now = this.#now()
    if (now - this.#sweptAt < SWEEP_EVERY_MS) return false
    this.#sweptAt = now
    this.#reclaim(now)
    return true
  }

  /** Frees the slots that hold nothing: count 0 and bucket full again (or never used). */
  #reclaim(now: number): void {
    const ints = this.#ints
    const f = this.#floats
    for (let s = 1; s < this.#slots; s++) {
      const base = s * I
      if (Atomics.load(ints, base + STATE) !== USED || Atomics.load(ints, base + COUNT) !== 0) continue
      if (Atomics.compareExchange(ints, base + LOCK, 0, 1) !== 0) continue
      const fb = s * F
      const at = f[fb + AT]!
      const full = at < 0 || f[fb + TOKENS]! + Math.max(0, now - at) * f[fb + PER_MS]! >= f[fb + BURST]!
      // Counts are taken under this lock too: 0 now stays 0 until the lock is let go.
      if (full && Atomics.load(ints, base + COUNT) === 0) {
        ints[base + HI] = 0
        ints[base + LO] = 0
        Atomics.store(ints, base + STATE, EMPTY)
      }
      Atomics.store(ints, base + LOCK, 0)
      Atomics.notify(ints, base + LOCK, 1)
    }
  }
}

/** Waits (briefly) for a slot another thread is claiming; its state afterwards. */
function waitClaim(ints: Int32Array, at: number): number {
  Atomics.wait(ints, at, CLAIMING, 1)
  return Atomics.load(ints, at)
}

/** Two independent 32-bit FNV-1a hashes of the key's UTF-16 code units. */
function hash(key: string): [number, number] {
  let a = 0x811c9dc5
  let b = 0x01000193 ^ key.length
  for (let i = 0; i < key.length; i++) {
    const c = key.charCodeAt(i)
    a = Math.imul(a ^ c, 0x01000193)
    b = Math.imul(b ^ c, 0x5bd1e995) ^ (b >>> 15)
  }
  return [a | 0, b | 0]
}
