// Sends `bytes` over one connection as fast as the socket takes them, half-closes, and waits
// for the server's byte count. Prints { bytes, seconds, mbps } (MB/s, 10^6 bytes).
import { connect } from 'node:net'

const [host, port, bytes] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4])]
const chunk = Buffer.alloc(1 << 20, 0x5a)
const t0 = process.hrtime.bigint()
const s = connect({ host, port, allowHalfOpen: true })
let sent = 0
let reply = ''
const pump = (): void => {
  while (sent < bytes) {
    const n = Math.min(chunk.length, bytes - sent)
    sent += n
    if (!s.write(n === chunk.length ? chunk : chunk.subarray(0, n))) return void s.once('drain', pump)
  }
  s.end()
}
s.on('connect', pump)
s.on('data', (c: Buffer) => { reply += c.toString() })
s.on('end', () => {
  const seconds = Number(process.hrtime.bigint() - t0) / 1e9
  if (Number(reply.trim()) !== bytes) { process.stdout.write(`${JSON.stringify({ error: `server counted ${reply.trim()}, sent ${bytes}` })}\n`); process.exit(1) }
  process.stdout.write(`${JSON.stringify({ bytes, seconds, mbps: bytes / seconds / 1e6 })}\n`)
})
s.on('error', (e) => { process.stdout.write(`${JSON.stringify({ error: e.message })}\n`); process.exit(1) })
setTimeout(() => { process.stdout.write(`${JSON.stringify({ error: 'timeout' })}\n`); process.exit(1) }, 120_000).unref()
