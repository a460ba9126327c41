// LogThrottle: log refusals of the same kind at a bounded rate. A peer that sends thousands of
// bad streams a second must not get thousands of log lines a second: per kind (a constant the
// caller picks, e.g. 'hbone-bad-authority') the first `perWindow` lines of each window are
// written, the rest only counted, and at the end of a window in which something was held back
// ONE warn line says how many of each kind:
//
//   {"level":"warn","suppressed":{"hbone-bad-authority":995},"windowSeconds":10,"msg":"similar log lines suppressed"}
//
//   const throttle = new LogThrottle(log)            // 5 lines per kind per 10 s, 64 kinds
//   throttle.warn('hbone-bad-authority', { peer, authority: clip(authority) }, 'CONNECT refused')
//   throttle.close()                                 // at shutdown: the last summary
//
// API:
//   new LogThrottle(log, { perWindow = 5, windowMs = 10_000, maxKinds = 64 }, now = Date.now)
//   warn / info / debug(kind, fields, msg)  write the line at that level if its kind has had
//                                           fewer than perWindow lines this window, else count it
//   close()                                 write the summary now if anything was held back, stop the timer
//
// - A window starts with the first line after a quiet spell and lasts windowMs; windows are
//   rolled when a line arrives after the end, or by a timer. The timer runs only while
//   something is held back (no wake-ups when idle) and is unref()ed (it never keeps the
//   process alive). `now` is the clock, for tests.
// - Memory is bounded whatever kinds callers invent: at most maxKinds kinds are tracked per
//   window; lines of further kinds share one budget and are counted under "other". A kind
//   longer than 64 characters is clipped. Kinds are the caller's constants, never a peer's data.
// - A line below the logger's level is neither written nor counted.
// - Counts are per window: nothing is kept once a window's summary is written.
// - After close() the throttle still works (a later suppression starts a new timer).
import type { Level } from 'pino'
import { clip } from './clip.ts'
import type { Logger } from './logger.ts'

export interface LogThrottleOptions {
  /** Lines written per kind per window (default 5). */
  readonly perWindow?: number
  /** Window length in ms (default 10,000). */
  readonly windowMs?: number
  /** Kinds tracked per window; further kinds are counted under "other" (default 64). */
  readonly maxKinds?: number
}

export const LOG_THROTTLE_DEFAULTS = { perWindow: 5, windowMs: 10_000, maxKinds: 64 } as const

/** The summary's key for the kinds beyond maxKinds. */
export const OTHER_KIND = 'other'

const MAX_KIND_CHARS = 64

interface Tally {
  written: number
  suppressed: number
}

export class LogThrottle {
  readonly #log: Logger
  readonly #now: () => number
  readonly #perWindow: number
  readonly #windowMs: number
  readonly #maxKinds: number
  readonly #kinds = new Map<string, Tally>()
  readonly #other: Tally = { written: 0, suppressed: 0 }
  #windowStart: number | undefined
  #suppressed = 0
  #timer: NodeJS.Timeout | undefined

  constructor(log: Logger, opts: LogThrottleOptions = {}, now: () => number = Date.now) {
    this.#log = log
    this.#now = now
    this.#perWindow = count('perWindow', opts.perWindow ?? LOG_THROTTLE_DEFAULTS.perWindow, 0)
    this.#windowMs = count('windowMs', opts.windowMs ?? LOG_THROTTLE_DEFAULTS.windowMs, 1)
    this.#maxKinds = count('maxKinds', opts.maxKinds ?? LOG_THROTTLE_DEFAULTS.maxKinds, 0)
  }

  /** Writes the line at warn if its kind has had fewer than perWindow lines this window; otherwise counts it. */
  warn(kind: string, fields: Record<string, unknown>, msg: string): void {
    this.#line('warn', kind, fields, msg)
  }

  /** As warn(), at info. */
  info(kind: string, fields: Record<string, unknown>, msg: string): void {
    this.#line('info', kind, fields, msg)
  }

  /** As warn(), at debug. */
  debug(kind: string, fields: Record<string, unknown>, msg: string): void {
    this.#line('debug', kind, fields, msg)
  }

  /** Writes the summary now if anything was held back, and stops the timer. */
  close(): void {
    this.#roll()
  }

  #line(level: Level, kind: string, fields: Record<string, unknown>, msg: string): void {
    if (!this.#log.isLevelEnabled(level)) return
    const now = this.#now()
    if (this.#windowStart !== undefined && now - this.#windowStart >= this.#windowMs) this.#roll()
    this.#windowStart ??= now
    const tally = this.#tally(kind)
    if (tally.written < this.#perWindow) {
      tally.written++
      this.#log[level](fields, msg)
      return
    }
    tally.suppressed++
    this.#suppressed++
    if (!this.#timer) {
      const left = Math.min(this.#windowMs, Math.max(0, this.#windowStart + this.#windowMs - now))
      this.#timer = setTimeout(() => this.#roll(), left)
      this.#timer.unref()
    }
  }

  #tally(kind: string): Tally {
    const key = clip(kind, MAX_KIND_CHARS)
    let tally = this.#kinds.get(key)
    if (tally) return tally
    if (this.#kinds.size >= this.#maxKinds) return this.#other
    tally = { written: 0, suppressed: 0 }
    this.#kinds.set(key, tally)
    return tally
  }

  /** Ends the window: one summary line if anything was held back, then nothing is kept. */
  #roll(): void {
    if (this.#timer) clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#suppressed > 0 && this.#windowStart !== undefined) {
      const suppressed: Record<string, number> = {}
      for (const [kind, tally] of this.#kinds) if (tally.suppressed > 0) suppressed[kind] = tally.suppressed
      if (this.#other.suppressed > 0) suppressed[OTHER_KIND] = (suppressed[OTHER_KIND] ?? 0) + this.#other.suppressed
      const elapsed = Math.min(this.#windowMs, Math.max(0, this.#now() - this.#windowStart))
      this.#log.warn({ suppressed, windowSeconds: elapsed / 1000 }, 'similar log lines suppressed')
    }
    this.#kinds.clear()
    this.#other.written = 0
    this.#other.suppressed = 0
    this.#suppressed = 0
    this.#windowStart = undefined
  }
}

function count(name: string, value: number, min: number): number {
  if (!Number.isSafeInteger(value) || value < min) throw new RangeError(`LogThrottle: ${name} must be an integer >= ${min}, got ${value}`)
  return value
}
