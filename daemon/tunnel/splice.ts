// Joins two byte streams both ways: backpressure (pipe), half-close (an end on one side ends
// the other's writable side only), and resets (an error or abort on one side destroys the
// other). Counts bytes each way and reports once, when both sides are closed. The bytes also
// pace the young-generation collections that free the chunks' buffers (relay-gc.ts).
import { constants as h2 } from 'node:http2'
import type { Duplex } from 'node:stream'
import { relayedBytes } from './relay-gc.ts'

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
  // Only what HTTP/2 streams hand over paces the collections (relay-gc.ts): counting the TCP
  // side's bytes as well measured worse on the sending host.
  if (isH2Stream(a)) a.on('data', (c: Buffer) => { aToB += c.length; relayedBytes(c.length) })
  else a.on('data', (c: Buffer) => { aToB += c.length })
  if (isH2Stream(b)) b.on('data', (c: Buffer) => { bToA += c.length; relayedBytes(c.length) })
  else b.on('data', (c: Buffer) => { bToA += c.length })
  a.pipe(b)
  b.pipe(a)
  const fail = (other: Duplex) => (err: Error): void => {
    error ??= err
    reset(other)
  }
  a.on('error', fail(b))
  b.on('error', fail(a))
  // An HTTP/2 stream the peer reset emits no error (and may still emit 'end'): look at its
  // RST code, so the other side is reset too instead of seeing a polite FIN. A side that
  // closes before its end (a stream whose session died) was aborted, not finished: the other
  // side is reset too. A TCP reset arrives as an 'error' (above).
  a.once('close', () => { if (aborted(a)) reset(b); closed() })
  b.once('close', () => { if (aborted(b)) reset(a); closed() })
  return {
    close(reason) {
      error ??= reason
      reset(a)
      reset(b)
    },
  }
}

interface MaybeH2Stream { rstCode?: number; close?: (code?: number) => void }

function isH2Stream(s: Duplex): boolean {
  return 'rstCode' in s
}

function aborted(s: Duplex): boolean {
  const code = (s as Duplex & MaybeH2Stream).rstCode
  return (code !== undefined && code !== h2.NGHTTP2_NO_ERROR) || !s.readableEnded
}

/**
 * The failure is passed on, not hidden: an HTTP/2 stream gets RST_STREAM(CONNECT_ERROR)
 * (RFC 7540 8.3), a TCP socket an RST.
 */
function reset(s: Duplex): void {
  const stream = s as Duplex & MaybeH2Stream
  if (typeof stream.close === 'function' && isH2Stream(s)) {
    if (!s.destroyed) stream.close(h2.NGHTTP2_CONNECT_ERROR)
    return
  }
  const r = s as Duplex & { resetAndDestroy?: () => void; _handle?: unknown }
  // Not once its end was written: while that shutdown is in flight libuv refuses the reset
  // (uv_tcp_close_reset: EINVAL) and node then never closes the handle, so the fd leaks and
  // 'close' never comes. A plain destroy still closes it (its FIN is already out).
  if (typeof r.resetAndDestroy === 'function' && r._handle && !s.writableEnded) {
    try {
      r.resetAndDestroy()
      return
    } catch {
      // not a TCP handle (TLS, HTTP/2 stream): destroy below
    }
  }
  s.destroy()
}
