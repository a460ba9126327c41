// HTTP/1.1 keep-alive load for the http-clients benchmark when wrk is not installed: `conns`
// connections each sending the next GET as soon as the previous answer's body has been read.
// Bounded by time and by a request cap; prints one JSON line in wrk-report.lua's shape.
// Usage: http-load.ts <url> <connections> <seconds>
import http from 'node:http'
import { percentile } from './stats.ts'

const [url, conns, seconds] = [new URL(process.argv[2]!), Number(process.argv[3] ?? 64), Number(process.argv[4] ?? 5)]
const MAX_REQUESTS = 5_000_000
const agent = new http.Agent({ keepAlive: true, maxSockets: conns })
const latencies: number[] = []
let errors = 0
let non2xx = 0
let sent = 0
const deadline = Date.now() + seconds * 1000

function one(): Promise<void> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint()
    const req = http.get(url, { agent }, (res) => {
      if (res.statusCode === undefined || res.statusCode >= 400) non2xx++
      res.resume()
      res.once('end', () => { latencies.push(Number(process.hrtime.bigint() - t0) / 1e6); resolve() })
      res.once('error', () => { errors++; resolve() })
    })
    req.setTimeout(5000, () => req.destroy())
    req.once('error', () => { errors++; resolve() })
  })
}

async function connection(): Promise<void> {
  while (Date.now() < deadline && sent < MAX_REQUESTS) {
    sent++
    await one()
  }
}

const t0 = process.hrtime.bigint()
await Promise.all(Array.from({ length: conns }, connection))
const took = Number(process.hrtime.bigint() - t0) / 1e9
agent.destroy()
process.stdout.write(`${JSON.stringify({ requests: latencies.length, seconds: took, errors, non2xx, p50ms: percentile(latencies, 0.5), p99ms: percentile(latencies, 0.99) })}\n`)
