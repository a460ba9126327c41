// Works around a Node.js bug (seen on 24.21): an HTTP/2 stream's writev whose last chunk is
// empty completes the write at once, before nghttp2 has taken the earlier chunks. A string
// chunk's storage is then freed under it, so the first 16 bytes of what goes on the wire are
// the allocator's bookkeeping (glibc's tcache pointers); a Buffer chunk is no longer held.
// node:http writes exactly that shape: OutgoingMessage.end() adds an empty '' behind a head and
// body still corked on the socket (a POST with Content-Length whose body came before the pooled
// connection was handed over; a relayed response that ends in the tick of its last chunk). An
// HBONE CONNECT stream carries HTTP/1.1 both ways, so its empty writes are dropped here: they
// carry no data, and their callbacks still run. TCP sockets do not have the bug.
import { Socket } from 'node:net'
import type { Duplex } from 'node:stream'

type Done = (err?: Error | null) => void
interface Chunk { readonly chunk: Buffer | string; readonly encoding: BufferEncoding }
type Chunks = Chunk[] & { allBuffers?: boolean }
interface Writes {
  _write(chunk: Buffer | string, encoding: BufferEncoding, cb: Done): void
  _writev?: (chunks: Chunks, cb: Done) => void
}

/** `s` itself, its empty writes dropped when it is not a TCP socket. */
export function withoutEmptyWrites<T extends Duplex>(s: T): T {
  if (s instanceof Socket) return s
  const w = s as unknown as Writes
  const write = w._write
  const writev = w._writev
  w._write = function (chunk, encoding, cb) {
    if (chunk.length === 0) return cb()
    write.call(this, chunk, encoding, cb)
  }
  if (writev) {
    w._writev = function (chunks, cb) {
      if (chunks.every((c) => c.chunk.length > 0)) return writev.call(this, chunks, cb)
      const kept: Chunks = chunks.filter((c) => c.chunk.length > 0)
      if (kept.length === 0) return cb()
      if (kept.length === 1) return write.call(this, kept[0]!.chunk, kept[0]!.encoding, cb)
      kept.allBuffers = kept.every((c) => typeof c.chunk !== 'string')
      writev.call(this, kept, cb)
    }
  }
  return s
}
