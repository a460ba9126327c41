// A server workload for the end-to-end tests: on each connection it sends `bytes` bytes
// (-1: without end, as fast as the peer takes them) and then ends its side; what it receives
// is read and dropped. Prints "listening <port>", then {"accepted":N,"open":N} whenever those
// change (at most every 200 ms), so a test can tell how many connections reached it.
import { createServer } from 'node:net'

const [port, bytes] = [Number(process.argv[2]), Number(process.argv[3] ?? 1000)]
const CHUNK = Buffer.alloc(64 << 10, 'x')
let accepted = 0
let open = 0
let said = ''

const server = createServer({ allowHalfOpen: true }, (s) => {
  accepted++
  open++
  s.on('error', () => undefined)
  s.once('close', () => { open-- })
  s.resume()
  let left = bytes < 0 ? Infinity : bytes
  const pump = (): void => {
    while (left > 0 && !s.destroyed) {
      const n = Math.min(left, CHUNK.length)
      left -= n
      if (!s.write(n === CHUNK.length ? CHUNK : CHUNK.subarray(0, n))) return void s.once('drain', pump)
    }
    if (!s.destroyed) s.end()
  }
  pump()
})
server.listen({ host: '::', port, ipv6Only: false }, () => process.stdout.write(`listening ${port}\n`))
setInterval(() => {
  const now = JSON.stringify({ accepted, open })
  if (now !== said) process.stdout.write(`${(said = now)}\n`)
}, 200)
process.on('SIGTERM', () => process.exit(0))
