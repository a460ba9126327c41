// A token bucket: `burst` tokens at most, refilled continuously at `perSecond`. Time is read
// only when a token is asked for, so an idle bucket costs nothing (no timer).
export class TokenBucket {
  readonly #perMs: number
  readonly #burst: number
  readonly #now: () => number
  #tokens: number
  #at: number

  constructor(perSecond: number, burst: number, now: () => number = Date.now) {
    this.#perMs = perSecond / 1000
    this.#burst = burst
    this.#now = now
    this.#tokens = burst
    this.#at = now()
  }

  /** Takes `n` tokens if there are that many; false (and nothing taken) otherwise. */
  take(n = 1): boolean {
    this.#refill()
    if (this.#tokens < n) return false
    this.#tokens -= n
    return true
  }

  /**
   * A penalty: empties the bucket and owes `n` more (at most `burst`), so nothing is granted
   * for the next n / perSecond seconds.
   */
  drain(n: number): void {
    this.#refill()
    this.#tokens = Math.max(-this.#burst, Math.min(this.#tokens, 0) - n)
  }

  /** How long until `n` tokens are there (0 when they are now). */
  waitMs(n = 1): number {
    this.#refill()
    return this.#tokens >= n ? 0 : (n - this.#tokens) / this.#perMs
  }

  /** Full again: nothing to remember about this key. */
  get full(): boolean {
    this.#refill()
    return this.#tokens >= this.#burst
  }

  #refill(): void {
    const now = this.#now()
    this.#tokens = Math.min(this.#burst, this.#tokens + (now - this.#at) * this.#perMs)
    this.#at = now
  }
}
