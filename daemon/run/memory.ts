// Gives memory back after a burst. A flood of tunnels (or an attack) grows V8's heap, and V8
// keeps the freed pages pooled for reuse: measured here, 9,000 tunnels took RSS from 155 to
// 385 MB and it stayed there, even after ordinary full GCs (heap 37 MB, RSS unchanged). Only a
// "last resort" collection releases the pool (back to 138 MB, a ~100 ms pause). So when RSS is
// a threshold above where it was at start *and* the data plane is quiet, one such collection
// runs. It never runs under load (the pause would land on traffic). Quiet means few
// connections open, and few new connections, streams, requests or L4 chunks relayed since the
// last look: 1,000 req/s on 16 long-lived L4 tunnels opens nothing new, yet a 100 ms pause
// there is a 100 ms p99 (the peer bench caught it), so the chunks count. It also means an
// event loop at most 20% busy; not "nearly idle", as it was at first (2%): a daemon whose
// /metrics is read a few times a second spends that much on the reads alone, and never let go
// of a burst's memory (the hostile-peer test, which polls while it waits). What it cannot release
// (memory outside V8's heap) would make it run again and again for nothing: each collection
// that frees little doubles the wait before the next, up to ten minutes, unless a new burst
// came in between. A look every 5 s cannot see a load that began a moment before it, so a
// collection the look decides on waits CONFIRM_MS more and runs only if nothing new came and
// the loop stayed idle meanwhile (the peer bench caught one landing at the start of a load).
// Memory outside V8's heap that glibc's malloc freed but keeps (V8's compiler zones after a
// round of JIT compilations, Node's buffers after a burst) is handed back with malloc_trim:
// about a millisecond per 30 MiB given back (measured: 5 ms for 125 MiB), so it may run while
// traffic flows, but not on a saturated loop, and only after RSS grew a step since the last
// trim, so a steady load does not trim again.
// With worker threads, each isolate pools its own freed pages, and its heap statistics do not
// show them (a thread's heap looks back to idle while the process holds 100 MB more): only the
// process's RSS does. So the main thread alone looks and decides, and a collection is a round:
// its own, then each worker thread's, each run only if that thread stayed quiet through
// confirmMs (relieveIfQuiet), then one trim. The hostile-peer test caught RSS left 110 MB up
// when a burst's pool sat in a worker thread that measured only its own heap.
import { Counter, type Registry } from 'prom-client'
import { v8Collect, type Collect } from '../../base/gc.ts'
import type { Logger } from '../../base/logger.ts'
import type { MallocTrim } from './malloc-trim.ts'

/** What the data plane is doing: connections open now; connections, streams, requests, refusals and L4 chunks relayed since start. */
export interface Activity {
  readonly open: number
  readonly seen: number
}

export interface MemoryReliefOptions {
  readonly activity: () => Activity
  readonly log: Logger
  readonly registry: Registry
  /** How often RSS and activity are looked at. */
  readonly everyMs?: number
  /** RSS above its level at start that is worth a collection. */
  readonly thresholdBytes?: number
  /** Quiet: at most this many connections open, and at most this many seen (connections, streams, requests, L4 chunks) since the last look, at two looks in a row. */
  readonly quietConnections?: number
  /** Quiet also: the event loop busy at most this share of the time since the last look. */
  readonly quietUtilization?: number
  /** After a look decides to collect, how long it must stay quiet before the collection runs. */
  readonly confirmMs?: number
  /** The event loop's utilization since the previous call, 0..1 (performance.eventLoopUtilization by default). */
  readonly utilization?: () => number
  readonly rss?: () => number
  readonly now?: () => number
  /** glibc's malloc_trim; without it nothing outside V8's heap is given back. */
  readonly malloc?: MallocTrim
  /** RSS growth since the last trim (or start) that is worth a trim, when malloc keeps at least half of it free. */
  readonly trimStepBytes?: number
  /** A trim waits for a look at which the event loop was busy at most this share of the time. */
  readonly trimUtilization?: number
  /** The worker threads' part of a collection round: each collects if it stayed quiet (relieveIfQuiet). */
  readonly others?: () => Promise<unknown>
}

const MAX_BACKOFF_MS = 10 * 60_000

export class MemoryRelief {
  readonly #opts: Required<Omit<MemoryReliefOptions, 'log' | 'registry' | 'malloc' | 'others'>> & Pick<MemoryReliefOptions, 'log' | 'malloc' | 'others'>
  readonly #reliefs: Counter
  readonly #trims: Counter
  readonly #collect: Collect
  #timer: NodeJS.Timeout | undefined
  #baseline = 0
  #lastSeen = 0
  #quietLooks = 0
  #wait: number
  #notBefore = 0
  #seenAtLast = 0
  /** RSS after the last round: growth past it is a new burst, wherever it landed. */
  #rssAtLast = Infinity
  #confirming: NodeJS.Timeout | undefined
  #trimmedAt = 0
  #inRound = false

  constructor(opts: MemoryReliefOptions) {
    this.#opts = { everyMs: 5000, confirmMs: 250, thresholdBytes: 64 * 2 ** 20, quietConnections: 64, quietUtilization: 0.2, trimStepBytes: 16 * 2 ** 20, trimUtilization: 0.5, utilization: loopUtilization(), rss: () => process.memoryUsage.rss(), now: Date.now, ...opts }
    this.#wait = this.#opts.everyMs
    this.#reliefs = new Counter({ name: 'hostmesh_memory_reliefs_total', help: 'Full garbage collections that released pooled heap memory after a burst, once the data plane was quiet.', registers: [opts.registry] })
    this.#trims = new Counter({ name: 'hostmesh_memory_trims_total', help: 'Times memory that malloc had freed but kept was handed back to the kernel (malloc_trim), after RSS grew.', registers: [opts.registry] })
    // V8's gc() takes the "last-resort" flavour that releases pooled pages.
    this.#collect = v8Collect()
  }

  start(): void {
    this.#baseline = this.#opts.rss()
    this.#trimmedAt = this.#baseline
    this.#lastSeen = this.#opts.activity().seen
    this.#timer = setInterval(() => void this.checkConfirmed(), this.#opts.everyMs).unref()
  }

  stop(): void {
    clearInterval(this.#timer)
    clearTimeout(this.#confirming)
  }

  /** One look, collecting at once when it is due; returns whether a collection round started (the other threads' part may still run). */
  check(): boolean {
    if (!this.#due()) return false
    void this.#run()
    return true
  }

  /**
   * A worker thread's part of the main thread's round: collects confirmMs from now if this
   * thread stayed quiet meanwhile (few connections open, none new, an idle event loop).
   */
  relieveIfQuiet(): Promise<boolean> {
    const seen = this.#opts.activity().seen
    this.#opts.utilization()
    return new Promise((resolve) => {
      setTimeout(() => {
        const { open, seen: now } = this.#opts.activity()
        const quiet = open <= this.#opts.quietConnections && now === seen && this.#opts.utilization() <= this.#opts.quietUtilization
        if (quiet) {
          this.#collect({ type: 'major', execution: 'sync', flavor: 'last-resort' })
          this.#reliefs.inc()
        }
        resolve(quiet)
      }, this.#opts.confirmMs).unref()
    })
  }

  /**
   * One look; when a collection is due, it runs confirmMs later unless a connection came or the
   * event loop was busy meanwhile. Resolves with whether it ran.
   */
  checkConfirmed(): Promise<boolean> {
    if (!this.#due()) return Promise.resolve(false)
    const seen = this.#opts.activity().seen
    this.#opts.utilization()
    return new Promise((resolve) => {
      this.#confirming = setTimeout(() => {
        const still = this.#opts.activity().seen === seen && this.#opts.utilization() <= this.#opts.quietUtilization
        if (!still) this.#quietLooks = 0
        resolve(still ? this.#run().then(() => true) : false)
      }, this.#opts.confirmMs)
      this.#confirming.unref()
    })
  }

  /** Whether a collection is due now (updates the quiet looks and the back-off); trims malloc first when that is due. */
  #due(): boolean {
    let rss = this.#opts.rss()
    const { open, seen } = this.#opts.activity()
    const recent = seen - this.#lastSeen
    this.#lastSeen = seen
    this.#baseline = Math.min(this.#baseline, rss)
    const busy = this.#opts.utilization()
    if (busy <= this.#opts.trimUtilization) rss = this.#trim(rss)
    this.#quietLooks = open <= this.#opts.quietConnections && recent <= this.#opts.quietConnections && busy <= this.#opts.quietUtilization ? this.#quietLooks + 1 : 0
    const now = this.#opts.now()
    // A new burst since the last collection may have pooled new memory: no back-off for it.
    // This thread's activity does not see a burst on a worker thread; the process's RSS does.
    if (seen - this.#seenAtLast > this.#opts.quietConnections || rss > this.#rssAtLast + this.#opts.thresholdBytes / 2) {
      this.#wait = this.#opts.everyMs
      this.#notBefore = 0
    }
    return !this.#inRound && rss >= this.#baseline + this.#opts.thresholdBytes && this.#quietLooks >= 2 && now >= this.#notBefore
  }

  /** One round: this thread's collection, then the others' (each if quiet), then a trim. Without others, all of it synchronously. */
  #run(): Promise<void> {
    const rss = this.#opts.rss()
    const now = this.#opts.now()
    this.#seenAtLast = this.#opts.activity().seen
    const started = performance.now()
    this.#collect({ type: 'major', execution: 'sync', flavor: 'last-resort' })
    const pauseMs = Math.round(performance.now() - started)
    const others = this.#opts.others
    if (!others) {
      this.#finish(rss, now, pauseMs)
      return Promise.resolve()
    }
    this.#inRound = true
    const done = (): void => {
      this.#inRound = false
      this.#finish(rss, now, pauseMs)
    }
    return others().then(done, (err: unknown) => {
      this.#opts.log.warn({ err }, 'the worker threads\' part of a memory relief round failed')
      done()
    })
  }

  #finish(rss: number, now: number, pauseMs: number): void {
    // The collections freed external buffers into malloc: give those back too.
    const after = this.#trim(this.#opts.rss(), true)
    this.#rssAtLast = after
    // Freed little: what is left is not V8's to give back. Wait longer before trying again.
    this.#wait = rss - after < this.#opts.thresholdBytes / 2 ? Math.min(this.#wait * 2, MAX_BACKOFF_MS) : this.#opts.everyMs
    this.#notBefore = now + this.#wait
    this.#reliefs.inc()
    this.#opts.log.debug({ rssBefore: rss, rssAfter: after, pauseMs, nextInMs: this.#wait }, 'released pooled memory after a burst')
  }

  /** Trims when RSS grew a step since the last trim and malloc keeps half a step free (or when forced); returns RSS after. */
  #trim(rss: number, force = false): number {
    const malloc = this.#opts.malloc
    this.#trimmedAt = Math.min(this.#trimmedAt, rss)
    if (!malloc) return rss
    const step = this.#opts.trimStepBytes
    if (!force && (rss < this.#trimmedAt + step || malloc.inUse().free < step / 2)) return rss
    const started = performance.now()
    const released = malloc.trim()
    const after = this.#opts.rss()
    this.#trimmedAt = after
    if (!released) return after
    this.#trims.inc()
    this.#opts.log.debug({ rssBefore: rss, rssAfter: after, pauseMs: Math.round((performance.now() - started) * 10) / 10 }, 'gave memory malloc kept back to the kernel')
    return after
  }
}

/** The share of time the event loop was busy between calls (the first call: since start). */
function loopUtilization(): () => number {
  let last = performance.eventLoopUtilization()
  return () => {
    const now = performance.eventLoopUtilization()
    const u = performance.eventLoopUtilization(now, last).utilization
    last = now
    return u
  }
}
