// A request body that can be sent more than once: to a retry, and to a mirror. It streams to
// the try in flight as it arrives (a gRPC stream that waits for an answer before its next
// message must not wait on us), and keeps a copy while the body stays within the limit
// (64 KiB, Linkerd's): past it the copy is dropped, and the request can no longer be retried
// or mirrored with its body. Backpressure follows the try in flight: the client is read only
// as fast as that try's upstream takes it.
import type { IncomingHttpHeaders } from 'node:http2'
import { Readable } from 'node:stream'

/** Linkerd's and Envoy's order of size for a retry buffer. */
export const REPLAY_LIMIT = 64 * 1024

export class ReplayBody {
  readonly #source: Readable
  readonly #limit: number
  #chunks: Buffer[] | undefined = []
  #size = 0
  #ended = false
  #failed = false
  #out: Readable | undefined
  #trailers: IncomingHttpHeaders | undefined

  constructor(source: Readable, onBytes: (n: number) => void, limit = REPLAY_LIMIT) {
    this.#source = source
    this.#limit = limit
    source.on('data', (c: Buffer) => {
      onBytes(c.length)
      if (this.#chunks) {
        this.#size += c.length
        if (this.#size > this.#limit) this.#chunks = undefined
        else this.#chunks.push(c)
      }
      if (this.#out && !this.#out.push(c)) source.pause()
    })
    source.once('end', () => {
      this.#ended = true
      this.#out?.push(null)
    })
    // A body cut short (the client left or reset its stream): the try in flight sees an error.
    source.once('close', () => {
      if (this.#ended) return
      this.#failed = true
      this.#out?.destroy(new Error('the client\'s request body ended early'))
    })
    source.on('trailers', (t: IncomingHttpHeaders) => { this.#trailers = t })
    // Nothing is read until a try is ready for it.
    source.pause()
  }

  /** The whole body is still held, so another try (or a mirror) can be sent with it. */
  get replayable(): boolean {
    return this.#chunks !== undefined && !this.#failed
  }

  /** The whole body arrived and is held: it can go as one buffer (a mirror's copy, or a retry). */
  get complete(): Buffer | undefined {
    return this.#ended && this.#chunks ? Buffer.concat(this.#chunks, this.#size) : undefined
  }

  /**
   * The whole body once it has arrived (read as fast as the try in flight takes it), or
   * undefined as soon as it cannot be had: it outgrew the limit, the client's body ended
   * early, or it was thrown away unread (node's server dumps a body no try read once the
   * response is done, removing every 'data' listener first: its 'end' then comes without the bytes).
   */
  whenComplete(): Promise<Buffer | undefined> {
    if (!this.replayable || this.#ended) return Promise.resolve(this.complete)
    const source = this.#source
    return new Promise((resolve) => {
      // Added after the constructor's listeners, so these see the state those just updated. A
      // 'data' listener does not resume a stream paused explicitly, as this one is.
      const finish = (body: Buffer | undefined): void => {
        source.off('data', onData)
        source.off('end', onEnd)
        source.off('close', onClose)
        resolve(body)
      }
      const onData = (): void => { if (!this.replayable) finish(undefined) }
      const onEnd = (): void => finish(source.listeners('data').includes(onData) ? this.complete : undefined)
      const onClose = (): void => finish(this.complete)
      source.on('data', onData)
      source.once('end', onEnd)
      source.once('close', onClose)
    })
  }

  /** HTTP/2 request trailers, once they arrived. */
  get trailers(): IncomingHttpHeaders | undefined {
    return this.#trailers
  }

  /**
   * The body for the next try: what has been held so far, then the rest as it arrives. The
   * previous try's body is detached (that try was abandoned). Throws when the body is no
   * longer held: check `replayable` first.
   */
  attempt(): Readable {
    if (!this.replayable) throw new Error('the request body is no longer held')
    const previous = this.#out
    this.#out = undefined
    if (previous && !previous.destroyed) previous.destroy()
    const out = new Readable({ read: () => { if (this.#out === out) this.#source.resume() } })
    // An abandoned try's body may be destroyed by its sender: that is not the client's error.
    out.on('error', () => undefined)
    for (const c of this.#chunks!) out.push(c)
    if (this.#ended) out.push(null)
    this.#out = out
    return out
  }
}
