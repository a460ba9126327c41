// A connection over its workload's cap (outbound.maxConnectionsPerWorkload) is held for
// outbound.refusalDelay before it is reset, as Envoy's connection_limit filter `delay` does;
// what it sends meanwhile is never processed (at most the socket's read buffer is filled). A
// runaway client that retries at once then makes attempts at the pace of the delay, not as
// fast as resets come back: each attempt costs this thread an accept and a reset, and
// 13,000–15,000 a second cost 0.64 cores here (RELIABILITY.md, "one workload cannot starve the
// others"). At most `max` connections wait per thread; beyond that they are reset at once, so
// the hold is bounded whatever the client does.
import type { Socket } from 'node:net'

/** Per thread: a runaway client holds at most this many fds of ours while it waits. */
const MAX_WAITING = 1024

export class DelayedRefusals {
  readonly #delayMs: number
  readonly #max: number
  #waiting = 0

  constructor(delayMs: number, max = MAX_WAITING) {
    this.#delayMs = delayMs
    this.#max = max
  }

  /** Connections waiting for their reset now. */
  get waiting(): number {
    return this.#waiting
  }

  refuse(socket: Socket): void {
    if (this.#delayMs <= 0 || this.#waiting >= this.#max) return void socket.resetAndDestroy()
    this.#waiting++
    socket.on('error', () => undefined)
    socket.pause()
    const timer = setTimeout(() => socket.resetAndDestroy(), this.#delayMs)
    socket.once('close', () => {
      clearTimeout(timer)
      this.#waiting--
    })
  }
}
