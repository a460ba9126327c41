// How many mirrored copies (HTTPRoute RequestMirror) may be in flight at once: on the host, and
// per mirror service. A copy over either cap is dropped, never queued, so a slow or dead
// mirror can hold at most a bounded number of sockets and body buffers, and never the
// originals. Counted in the HostState, so with worker threads both caps hold for the host,
// not once per thread.
import { LocalHostState, type HostState } from '../limits/host-state.ts'

/** The host-wide cap: with bodies of at most 64 KiB (replay-body.ts), at most 64 MiB held. */
export const MIRROR_MAX_IN_FLIGHT = 1024

const TOTAL = 'mirror|*'

export class MirrorSlots {
  readonly #max: number
  readonly #host: HostState

  constructor(max = MIRROR_MAX_IN_FLIGHT, host: HostState = new LocalHostState()) {
    this.#max = max
    this.#host = host
  }

  /** A slot for one copy to `service` (at most `perService` at once); its release, or undefined when full. */
  acquire(service: string, perService: number): (() => void) | undefined {
    const total = this.#host.count(TOTAL).acquire(this.#max)
    if (!total) return undefined
    const mine = this.#host.count(`mirror|${service}`).acquire(perService)
    if (!mine) {
      total()
      return undefined
    }
    let released = false
    return () => {
      if (released) return
      released = true
      mine()
      total()
    }
  }

  /** Copies in flight now: to `service`, or in all. */
  inFlight(service?: string): number {
    return this.#host.count(service === undefined ? TOTAL : `mirror|${service}`).value
  }
}
