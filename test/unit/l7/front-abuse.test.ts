// The L7 front against a hostile client (scripts/netns/workloads/abuse-client.ts, raw bytes and
// HTTP/2 frames): every HTTP/2 flood ends its session, and is counted by reason through
// FrontMetrics, as are the requests the front answers itself. Node's guards do the catching;
// this pins that they still do (a Node upgrade that changed them would show here) and that
// hostmesh counts them.
import { execFile } from 'node:child_process'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import { promisify } from 'node:util'
import t, { type Test } from 'tap'
import { Registry } from 'prom-client'
import { HttpFront } from '../../../daemon/l7/detect.ts'
import { FrontMetrics } from '../../../daemon/l7/front-metrics.ts'
import { DEFAULT_L7_LIMITS } from '../../../daemon/l7/limits.ts'
import { h2CloseReason } from '../../../daemon/net/h2-errors.ts'

const ABUSE = new URL('../../../scripts/netns/workloads/abuse-client.ts', import.meta.url).pathname
const run = promisify(execFile)

async function front(t: Test): Promise<{ port: number; registry: Registry }> {
  const registry = new Registry()
  const counts = new FrontMetrics(registry).of('outbound')
  const f = new HttpFront<string>(DEFAULT_L7_LIMITS, {
    request: (_req, res) => res.end('ok'),
    upgrade: (_req, socket) => socket.destroy(),
    stream: (stream) => { if (!stream.destroyed) { stream.respond({ ':status': 200 }); stream.end('ok') } },
    sessionFailed: (err) => { const r = h2CloseReason(err); if (r) counts.sessionClosed(r) },
    rejected: (status) => counts.rejected(status),
  })
  const server = createServer((s) => f.serve(s, 'ctx', 'http'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { f.destroy(); server.close() })
  return { port: (server.address() as AddressInfo).port, registry }
}

async function abuse(spec: Record<string, unknown>): Promise<Record<string, unknown>> {
  const { stdout } = await run(process.execPath, [ABUSE, JSON.stringify({ host: '127.0.0.1', durationMs: 1500, timeoutMs: 1000, ...spec })], { timeout: 20_000, env: { ...process.env, NODE_OPTIONS: '' } })
  return JSON.parse(stdout.trim().split('\n').at(-1)!) as Record<string, unknown>
}

const counted = async (registry: Registry, name: string, labels: string): Promise<number> => {
  const text = await registry.getSingleMetricAsString(name)
  const m = new RegExp(`\\{${labels}\\} (\\d+)`).exec(text)
  return m ? Number(m[1]) : 0
}

// Which guard trips first depends on timing: a CONTINUATION flood of literal headers can be
// refused as a protocol error (the header list is over its size) before the frame count is
// reached; a rapid reset as a protocol error of the stream it resets.
const REASONS = {
  settings: ['flood'], ping: ['flood'], 'big-headers': ['flood'], continuation: ['flood', 'protocol'], 'rapid-reset': ['reset_flood', 'protocol'],
} as const
for (const [attack, reasons] of Object.entries(REASONS)) {
  t.test(`HTTP/2 ${attack}: the session is ended and counted (${reasons.join(' or ')})`, async (t) => {
    const { port, registry } = await front(t)
    const r = await abuse({ mode: 'h2', port, attack, reconnect: false, authority: 'x' })
    t.equal(r.closedByServer, 1, `the server closed the connection (${JSON.stringify(r).slice(0, 300)})`)
    let n = 0
    for (const reason of reasons) n += await counted(registry, 'hostmesh_http2_sessions_closed_total', `direction="outbound",reason="${reason}"`)
    t.equal(n, 1, 'counted once')
  })
}

t.test('random bytes are answered 400 and counted', async (t) => {
  const { port, registry } = await front(t)
  const r = await abuse({ mode: 'garbage', port, connections: 1, bytes: 512, durationMs: 300 })
  const [attempts, closed] = [r.attempts as number, r.closedByServer as number]
  // The run's end can cut an attempt short of its answer: counted apart, never as a timeout.
  t.ok(closed >= 2 && r.timedOut === 0 && r.handshakeFailures === 0 && closed + (r.cutShort as number) === attempts,
    `every attempt the run let finish was closed by the server: ${JSON.stringify(r)}`)
  const n = await counted(registry, 'hostmesh_http_rejected_total', 'direction="outbound",status="400"')
  t.ok(n >= closed && n <= attempts, `each was counted as a 400: ${n} for ${closed} closed of ${attempts}`)
})
