// How many mirrored copies (HTTPRoute RequestMirror) may be in flight at once: per process,
// and per mirror service. A copy over either cap is dropped, never queued, so a slow or dead
// mirror can hold at most a bounded number of sockets and body buffers, and never the
// originals. Per process, not per host: a copy is best effort, and its cost (a held body, a
// socket) is this process's.

/** The process-wide cap: with bodies of at most 64 KiB (replay-body.ts), at most 64 MiB held. */
export const MIRROR_MAX_IN_FLIGHT = 1024

export class MirrorSlots {
  readonly #max: number
  readonly #byService = new Map<string, number>()
  #total = 0

  constructor(max = MIRROR_MAX_IN_FLIGHT) {
    this.#max = max
  }

  /** A slot for one copy to `service` (at most `perService` at once); its release, or undefined when full. */
  acquire(service: string, perService: number): (() => void) | undefined {
    const mine = this.#byService.get(service) ?? 0
    if (this.#total >= this.#max || mine >= perService) return undefined
    this.#total++
    this.#byService.set(service, mine + 1)
    let released = false
    return () => {
      if (released) return
      released = true
      this.#total--
      const left = this.#byService.get(service)! - 1
      if (left > 0) this.#byService.set(service, left)
      else this.#byService.delete(service)
    }
  }

  /** Copies in flight now: to `service`, or in all. */
  inFlight(service?: string): number {
    return service === undefined ? this.#total : this.#byService.get(service) ?? 0
  }
}
