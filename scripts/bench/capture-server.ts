// Bench server inside a test host: every connection gets one byte and is closed.
// On the captured port each accept also reads SO_ORIGINAL_DST, as the outbound listener will.
import { createServer } from 'node:net'
import { originalDst } from '../../daemon/intercept/origdst.ts'

const [capturedPort, directPort] = [Number(process.argv[2]), Number(process.argv[3])]
let lookups = 0
const captured = createServer((s) => {
  const dst = originalDst(s)
  if (dst.port !== 80) throw new Error(`unexpected original destination ${dst.address}:${dst.port}`)
  lookups++
  s.end('x')
  s.on('error', () => {})
})
const direct = createServer((s) => {
  s.end('x')
  s.on('error', () => {})
})
captured.listen(capturedPort, '127.0.0.1', () => direct.listen(directPort, '0.0.0.0', () => process.stdout.write('bench server ready\n')))
process.on('SIGTERM', () => {
  process.stdout.write(`lookups ${lookups}\n`)
  process.exit(0)
})
