// Load for the memory benchmark: HTTP/1.1 over HBONE CONNECT tunnels to one daemon's :15008, as a
// peer node's workload sends it, so every request takes the daemon's inbound path (mTLS, HTTP/2,
// authorization, HTTP/1.1 parse, a keep-alive pool to the workload). Prints one JSON line.
// Usage: memory-client.ts CERT_DIR HBONE_PORT WORKLOAD_PORT rate|peak RATE SECONDS TUNNELS
//   rate: open loop, request i due at start + i/RATE, spread over the tunnels (pipelined when one
//         is busy), latency from the due time; peak: each tunnel sends its next request as soon as
//         the last answer is in, for SECONDS.
import type { ClientHttp2Stream } from 'node:http2'
import pino from 'pino'
import { Registry } from 'prom-client'
import { CertManager } from '../../certs/manager.ts'
import { PeerVerifier } from '../../certs/tls.ts'
import { HboneClientPool } from '../../daemon/tunnel/client-pool.ts'
import { percentile } from './stats.ts'

const [certDir, hbonePort, workloadPort, mode, rateArg, secondsArg, tunnelsArg] = process.argv.slice(2)
if (!certDir || !hbonePort || !workloadPort || (mode !== 'rate' && mode !== 'peak') || !rateArg || !secondsArg || !tunnelsArg) {
  process.stderr.write('usage: memory-client.ts CERT_DIR HBONE_PORT WORKLOAD_PORT rate|peak RATE SECONDS TUNNELS\n')
  process.exit(2)
}
const id = (sa: string): string => `spiffe://cluster.local/ns/bench/sa/${sa}`
const log = pino({ level: 'silent' })
const certs = new CertManager({ mode: 'ca', certDir, trustDomain: 'cluster.local', node: 'node-a', log, watch: false, resyncMs: 0 })
await certs.start([id('client')])
const verifier = new PeerVerifier(() => ({ ...certs.trust(), nodesOf: () => new Set(['node-a']) }), log, new Registry())
const pool = new HboneClientPool(certs, verifier)

const REQUEST = Buffer.from('GET /1k HTTP/1.1\r\nhost: server.bench\r\n\r\n')

interface Tunnel {
  readonly stream: ClientHttp2Stream
  buf: Buffer
  /** Due (or send) times of the requests in flight on it, oldest first. */
  readonly due: number[]
  /** Body bytes still to come of the answer being read; -1 while reading a head. */
  need: number
}

const latencies: number[] = []
let non200 = 0
let answered = 0
let onAnswer: (t: Tunnel) => void = () => {}

// Content-Length framing only: the workload answers every request with 1 KiB and a length.
function read(t: Tunnel): void {
  for (;;) {
    if (t.need < 0) {
      const end = t.buf.indexOf('\r\n\r\n')
      if (end < 0) return
      const head = t.buf.subarray(0, end).toString('latin1')
      if (!head.startsWith('HTTP/1.1 200')) non200++
      const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)
      if (!length) throw new Error(`an answer without content-length: ${head}`)
      t.need = Number(length[1])
      t.buf = t.buf.subarray(end + 4)
    }
    if (t.buf.length < t.need) return
    t.buf = t.buf.subarray(t.need)
    t.need = -1
    latencies.push(performance.now() - t.due.shift()!)
    answered++
    onAnswer(t)
  }
}

function send(t: Tunnel, due: number): void {
  t.due.push(due)
  t.stream.write(REQUEST)
}

const tunnels: Tunnel[] = []
for (let i = 0; i < Number(tunnelsArg); i++) {
  const stream = await pool.open({
    source: id('client'), destination: id('server'), node: { address: '127.0.0.1', port: Number(hbonePort) },
    address: '127.0.0.1', port: Number(workloadPort), sourceWorkload: 'bench/client', destinationService: 'server.bench',
  })
  const t: Tunnel = { stream, buf: Buffer.alloc(0), due: [], need: -1 }
  stream.on('data', (chunk: Buffer) => { t.buf = t.buf.length > 0 ? Buffer.concat([t.buf, chunk]) : chunk; read(t) })
  stream.on('error', (err) => { throw err })
  tunnels.push(t)
}
// One request per tunnel first, not counted: the daemon's pool to the workload fills up.
await new Promise<void>((resolve) => {
  let n = 0
  onAnswer = () => { if (++n === tunnels.length) resolve() }
  for (const t of tunnels) send(t, performance.now())
})
latencies.length = 0
answered = 0

const seconds = Number(secondsArg)
const t0 = performance.now()
let sent = 0
await new Promise<void>((resolve) => {
  if (mode === 'peak') {
    const end = t0 + seconds * 1000
    onAnswer = (t) => {
      if (performance.now() < end) { send(t, performance.now()); sent++ } else if (answered === sent) resolve()
    }
    for (const t of tunnels) { send(t, performance.now()); sent++ }
    return
  }
  const rate = Number(rateArg)
  const total = Math.round(rate * seconds)
  onAnswer = () => { if (answered === total) resolve() }
  // Each wake-up sends everything due by now (one timer per request would be late in bunches).
  const tick = (): void => {
    const now = performance.now()
    while (sent < total && t0 + (sent * 1000) / rate <= now) send(tunnels[sent % tunnels.length]!, t0 + (sent++ * 1000) / rate)
    if (sent < total) setTimeout(tick, Math.max(0, t0 + (sent * 1000) / rate - performance.now()))
  }
  tick()
})
const elapsed = (performance.now() - t0) / 1000
const ms = (p: number): number => Math.round(percentile(latencies, p) * 1000) / 1000
process.stdout.write(`${JSON.stringify({ mode, requests: answered, non200, seconds: elapsed, rate: answered / elapsed, p50ms: ms(0.5), p99ms: ms(0.99), maxms: ms(1) })}\n`)
for (const t of tunnels) t.stream.end()
pool.close()
await certs.close()
