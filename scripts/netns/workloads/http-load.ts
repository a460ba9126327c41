// A bounded HTTP/1.1 client for the end-to-end tests: sends `n` requests to one URL, at most
// `concurrency` at once, optionally paced at `rate` requests per second (request i starts no
// earlier than i / rate s after the first), and prints one JSON object:
//   { elapsedMs, bodySha256?, results: [{ status, ms, server?, overloaded?, ratelimited?, retryAfter?, error? }] }
// in request order: status 0 is no response (error says why), ms runs from sending the
// request to the response's last byte, server/overloaded/ratelimited/retryAfter are the
// response's x-server, x-hostmesh-overloaded, x-hostmesh-ratelimited and retry-after headers;
// bodySha256 is the sha256 of the body every request sent, when there was one.
//   node http-load.ts '{"url": "http://10.96.0.1/x", "n": 100, "concurrency": 10}'
// Options: url, n (1), concurrency (1), rate (none), method (GET), bodyBytes (0: a body of
// that many bytes, the same pseudo-random bytes every time), keepAlive (true: one connection
// per concurrent request, reused; false: a connection per request), timeoutMs (10,000, per
// request), maxMs (60,000: requests not started by then are not sent), warmup (a URL: before
// the run, `concurrency` requests to it at once, not counted, so the run starts on open
// keep-alive connections and warm upstream pools).
import { createHash } from 'node:crypto'
import http from 'node:http'

interface Options {
  url: string
  n?: number
  concurrency?: number
  rate?: number
  method?: string
  bodyBytes?: number
  keepAlive?: boolean
  timeoutMs?: number
  maxMs?: number
  warmup?: string
}

/** One request's outcome; the output is a `LoadOutput`. Tests read both with `import type`. */
export interface Result {
  status: number
  ms: number
  server?: string
  overloaded?: string
  ratelimited?: string
  retryAfter?: string
  error?: string
}

export interface LoadOutput {
  elapsedMs: number
  bodySha256?: string
  results: Result[]
}

const opts = JSON.parse(process.argv[2] ?? '{}') as Options
const n = opts.n ?? 1
const concurrency = Math.max(1, Math.min(opts.concurrency ?? 1, n))
const timeoutMs = opts.timeoutMs ?? 10_000
const maxMs = opts.maxMs ?? 60_000
const agent = new http.Agent({ keepAlive: opts.keepAlive ?? true, maxSockets: concurrency })
const body = opts.bodyBytes ? pseudoRandom(opts.bodyBytes) : undefined
const results: Result[] = []
let next = 0

/** xorshift32 bytes: the same body every run, so its sha256 is known in advance. */
function pseudoRandom(size: number): Buffer {
  const out = Buffer.alloc(size)
  let x = 2463534242
  for (let i = 0; i < size; i++) {
    x ^= x << 13; x >>>= 0
    x ^= x >>> 17
    x ^= x << 5; x >>>= 0
    out[i] = x & 0xff
  }
  return out
}

const header = (v: string | string[] | undefined): string | undefined => (Array.isArray(v) ? v.join(',') : v)

/** One request of the run, or (warm) a GET to the warm-up URL. */
function one(warm = false): Promise<Result> {
  const payload = warm ? undefined : body
  return new Promise((resolve) => {
    const started = performance.now()
    let done = false
    const finish = (r: Omit<Result, 'ms'>): void => {
      if (done) return
      done = true
      resolve({ ...r, ms: Math.round((performance.now() - started) * 10) / 10 })
    }
    const req = http.request(warm ? opts.warmup! : opts.url, { method: warm ? 'GET' : opts.method ?? 'GET', agent, timeout: timeoutMs, headers: payload ? { 'content-length': String(payload.length) } : {} }, (res) => {
      res.resume()
      res.on('end', () => finish({
        status: res.statusCode ?? 0,
        server: header(res.headers['x-server']),
        overloaded: header(res.headers['x-hostmesh-overloaded']),
        ratelimited: header(res.headers['x-hostmesh-ratelimited']),
        retryAfter: header(res.headers['retry-after']),
      }))
      res.on('error', (err) => finish({ status: 0, error: err.message }))
    })
    req.on('timeout', () => req.destroy(new Error(`no response within ${timeoutMs} ms`)))
    req.on('error', (err) => finish({ status: 0, error: err.message }))
    req.end(payload)
  })
}

async function worker(): Promise<void> {
  for (;;) {
    const i = next++
    if (i >= n) return
    if (opts.rate) {
      const wait = t0 + (i * 1000) / opts.rate - performance.now()
      if (wait > 0) await new Promise((r) => setTimeout(r, wait))
    }
    if (performance.now() - t0 > maxMs) return
    results[i] = await one()
  }
}

if (opts.warmup) await Promise.all(Array.from({ length: concurrency }, () => one(true)))
const t0 = performance.now()
await Promise.all(Array.from({ length: concurrency }, worker))
agent.destroy()
process.stdout.write(`${JSON.stringify({ elapsedMs: Math.round(performance.now() - t0), ...(body ? { bodySha256: createHash('sha256').update(body).digest('hex') } : {}), results: results.filter(Boolean) } satisfies LoadOutput)}\n`)
