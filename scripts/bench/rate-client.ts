// Open-loop HTTP/1.1 load at a constant rate: request i is due at start + i/rate, whatever
// happened to the ones before it, over at most CONNS keep-alive connections (a request due
// while all are busy waits for one). Latency is measured from the due time, so a stall counts
// for every request it delays (no coordinated omission). Prints one JSON line: counts,
// percentiles in ms, and how late the client itself sent (its own lag, for judging the rest).
// Usage: rate-client.ts URL RATE SECONDS CONNS. It runs as a workload's uid, so it imports
// nothing but node: modules (scripts/netns/readable.ts mirrors only the file itself).
import http from 'node:http'

/** Nearest rank, as stats.ts. */
function percentile(xs: readonly number[], p: number): number {
  return [...xs].sort((a, b) => a - b)[Math.min(xs.length - 1, Math.floor(p * xs.length))]!
}

const [url, rateArg, secondsArg, connsArg] = process.argv.slice(2)
if (!url || !rateArg || !secondsArg || !connsArg) {
  process.stderr.write('usage: rate-client.ts URL RATE SECONDS CONNS\n')
  process.exit(2)
}
const rate = Number(rateArg)
const total = Math.round(rate * Number(secondsArg))
const agent = new http.Agent({ keepAlive: true, maxSockets: Number(connsArg), scheduling: 'fifo' })
const latencies: number[] = []
const lags: number[] = []
let failed = 0
let non2xx = 0
let done = 0
let sent = 0
let t0 = 0

function one(due: number): void {
  lags.push(performance.now() - due)
  const req = http.get(url!, { agent }, (res) => {
    if (res.statusCode !== 200) non2xx++
    res.resume()
    res.once('end', () => { latencies.push(performance.now() - due); finish() })
  })
  req.setTimeout(10_000, () => req.destroy(new Error('timeout')))
  req.once('error', () => { failed++; finish() })
}

function finish(): void {
  if (++done < total) return
  const seconds = (performance.now() - t0) / 1000
  // Sorted once; and no Math.max(...latencies): an hour at 200 req/s is 720,000 arguments, past the call stack.
  const sorted = [...latencies].sort((a, b) => a - b)
  const p = (q: number): number => Math.round((sorted[Math.min(sorted.length - 1, Math.floor(q * sorted.length))] ?? 0) * 1000) / 1000
  process.stdout.write(`${JSON.stringify({
    requests: latencies.length, failed, non2xx, seconds, rate: latencies.length / seconds,
    p50ms: p(0.5), p90ms: p(0.9), p99ms: p(0.99), p999ms: p(0.999), maxms: sorted.at(-1) ?? 0,
    lagP50ms: percentile(lags, 0.5), lagP99ms: percentile(lags, 0.99),
  })}\n`)
  agent.destroy()
}

// One timer per due time would be late in bunches; instead each wake-up sends everything due by now.
function tick(): void {
  const now = performance.now()
  while (sent < total && t0 + (sent * 1000) / rate <= now) one(t0 + (sent++ * 1000) / rate)
  if (sent < total) setTimeout(tick, Math.max(0, t0 + (sent * 1000) / rate - performance.now()))
}
// The connections are opened first (one request each, not counted): a new connection costs
// more than a request on an open one, and this measures requests.
const warm = Array.from({ length: Number(connsArg) }, () => new Promise<void>((resolve) => {
  http.get(url, { agent }, (res) => { res.resume(); res.once('end', resolve) }).once('error', () => resolve())
}))
await Promise.all(warm)
t0 = performance.now() + 10
setTimeout(tick, 10)
