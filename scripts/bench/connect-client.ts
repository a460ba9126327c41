// Opens `count` connections to host:port, `concurrency` at a time, reading each to EOF.
// Bounded in count and in time (30 s); prints one JSON line of results.
import { connect } from 'node:net'

const [host, port, count, concurrency] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5] ?? 16)]
const latencies: number[] = []
let started = 0
let failed = 0
const deadline = Date.now() + 30_000

function one(): Promise<void> {
  return new Promise((resolve) => {
    const t0 = process.hrtime.bigint()
    const s = connect(port, host)
    s.on('data', () => {})
    s.on('end', () => { latencies.push(Number(process.hrtime.bigint() - t0) / 1e6); resolve() })
    s.on('error', () => { failed++; resolve() })
  })
}

async function worker(): Promise<void> {
  while (started < count && Date.now() < deadline) {
    started++
    await one()
  }
}

const t0 = process.hrtime.bigint()
await Promise.all(Array.from({ length: concurrency }, worker))
const seconds = Number(process.hrtime.bigint() - t0) / 1e9
latencies.sort((a, b) => a - b)
const q = (p: number): number => latencies[Math.min(latencies.length - 1, Math.floor(p * latencies.length))] ?? NaN
process.stdout.write(`${JSON.stringify({ conns: latencies.length, failed, seconds, rate: latencies.length / seconds, p50ms: q(0.5), p99ms: q(0.99) })}\n`)
