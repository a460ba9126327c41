// Bytes each way on a stream that does not count them itself (an HTTP/2 stream carrying an
// HTTP connection: the L7 pipeline reads and writes it, so splice's counting is not there).
// Counts at the Writable's _write/_writev, which every write path ends in (write, cork/writev,
// pipe), and at 'data'.
import type { Duplex } from 'node:stream'

export interface ByteCount {
  readonly read: number
  readonly written: number
}

type WriteFn = (chunk: Buffer, encoding: BufferEncoding, cb: (err?: Error | null) => void) => void
type WritevFn = (chunks: { chunk: Buffer }[], cb: (err?: Error | null) => void) => void

export function countBytes(stream: Duplex): ByteCount {
  const count = { read: 0, written: 0 }
  stream.on('data', (c: Buffer) => { count.read += c.length })
  const s = stream as unknown as { _write: WriteFn; _writev?: WritevFn }
  const write = s._write.bind(stream)
  s._write = (chunk, encoding, cb) => {
    count.written += chunk.length
    write(chunk, encoding, cb)
  }
  const writev = s._writev?.bind(stream)
  if (writev) {
    s._writev = (chunks, cb) => {
      for (const c of chunks) count.written += c.chunk.length
      writev(chunks, cb)
    }
  }
  return count
}
