// A worker thread's log lines go to the primary, which writes them to the one destination
// (stdout for journald, or a test's stream): one writer, so lines from different threads never
// interleave mid-line, and the primary's bound on queued bytes holds for all of them. Lines
// are posted in one batch per event-loop turn, not one message each: the access log is on the
// data path.
import type { DestinationStream } from 'pino'

/** At most this many bytes wait in a worker for the next post; beyond, whole lines are dropped and counted. */
const MAX_PENDING_BYTES = 1024 * 1024

export interface LogPort {
  postMessage(message: { readonly type: 'log'; readonly lines: string }): void
}

export class PortDestination implements DestinationStream {
  readonly #port: LogPort
  #pending: string[] = []
  #bytes = 0
  #scheduled = false
  dropped = 0

  constructor(port: LogPort) {
    this.#port = port
  }

  write(line: string): void {
    if (this.#bytes + line.length > MAX_PENDING_BYTES) {
      this.dropped++
      return
    }
    this.#pending.push(line)
    this.#bytes += line.length
    if (!this.#scheduled) {
      this.#scheduled = true
      setImmediate(() => this.flush())
    }
  }

  /** Posts what is pending now (also before the worker exits). */
  flush(): void {
    this.#scheduled = false
    if (this.#pending.length === 0) return
    const lines = this.#pending.join('')
    this.#pending = []
    this.#bytes = 0
    this.#port.postMessage({ type: 'log', lines })
  }
}
