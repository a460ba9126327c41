// Joins two byte streams both ways: backpressure (pipe), half-close (an end on one side ends
// the other's writable side only), and resets (an error or abort on one side destroys the
// other). Counts bytes each way and reports once, when both sides are closed.
import type { Duplex } from 'node:stream'

export interface SpliceResult {
  /** Bytes from `a` to `b`, and back. */
  readonly aToB: number
  readonly bToA: number
  readonly error?: Error
}

export interface Splice {
  /** Ends both sides now (a policy revoked the connection); `reason` goes into the result. */
  close(reason: Error): void
}

export function splice(a: Duplex, b: Duplex, done: (r: SpliceResult) => void): Splice {
  let aToB = 0
  let bToA = 0
  let error: Error | undefined
  let open = 2
  const closed = (): void => {
    if (--open === 0) done({ aToB, bToA, ...(error ? { error } : {}) })
  }
  a.on('data', (c: Buffer) => { aToB += c.length })
  b.on('data', (c: Buffer) => { bToA += c.length })
  a.pipe(b)
  b.pipe(a)
  const fail = (other: Duplex) => (err: Error): void => {
    error ??= err
    reset(other)
  }
  a.on('error', fail(b))
  b.on('error', fail(a))
  // A side that closes before its readable side ended cleanly was aborted (an HTTP/2 stream
  // reset, a TCP reset without an 'error'): the other side must not wait for an end that
  // never comes.
  let aEnded = false
  let bEnded = false
  a.once('end', () => { aEnded = true })
  b.once('end', () => { bEnded = true })
  a.once('close', () => { if (!aEnded) reset(b); closed() })
  b.once('close', () => { if (!bEnded) reset(a); closed() })
  return {
    close(reason) {
      error ??= reason
      reset(a)
      reset(b)
    },
  }
}

/** A TCP socket is reset (RST), not closed politely, so the peer sees the failure. */
function reset(s: Duplex): void {
  const r = s as Duplex & { resetAndDestroy?: () => void; _handle?: unknown }
  if (typeof r.resetAndDestroy === 'function' && r._handle) {
    try {
      r.resetAndDestroy()
      return
    } catch {
      // not a TCP handle (TLS, HTTP/2 stream): destroy below
    }
  }
  s.destroy()
}
