// The hostile HBONE peer (scripts/netns/workloads/hbone-peer.ts) against a real HboneServer
// on loopback, as a child process: each mode does what it says and reports it in one JSON
// line. Nothing here asserts how the server defends itself; only what the peer did.
import { inboundHttp } from '../helpers/l7.ts'
import { execFile } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { NodeIssuer } from '../../certs/issuer.ts'
import { CertManager } from '../../certs/manager.ts'
import { PeerVerifier } from '../../certs/tls.ts'
import { tcpMetrics } from '../../daemon/metrics/istio-tcp.ts'
import { ConnectionTelemetry } from '../../daemon/telemetry/connection.ts'
import { nodesByIdentity } from '../../daemon/run/placement.ts'
import { HboneServer } from '../../daemon/tunnel/server.ts'
import { loadPolicy } from '../../policy/pipeline.ts'
import { nodeCertDir } from '../helpers/pki.ts'

const PEER = new URL('../../scripts/netns/workloads/hbone-peer.ts', import.meta.url).pathname
const V = 'apiVersion: hostmesh.io/v1alpha1\n'
const ID = (sa: string): string => `spiffe://cluster.local/ns/t/sa/${sa}`
const log = pino({ level: 'silent' })

type Result = Record<string, any>

// One PKI, policy and echo workload for the file; a fresh HboneServer per test.
const dir = mkdtempSync(join(tmpdir(), 'hostmesh-hbone-peer-'))
mkdirSync(join(dir, 'policy.d'))
const echo = createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => undefined); s.pipe(s) })
await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
t.teardown(() => { echo.close() })
const echoPort = (echo.address() as AddressInfo).port
writeFileSync(join(dir, 'policy.d', 'p.yaml'), [
  `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n`,
  `${V}kind: Workload\nmetadata: {name: echo, namespace: t}\nspec: {node: node-a, serviceAccount: echo, match: {uid: 5001}, addresses: [127.0.0.1], ports: [{port: ${echoPort}}]}\n`,
  `${V}kind: Workload\nmetadata: {name: client, namespace: t}\nspec: {node: node-a, serviceAccount: client, match: {uid: 5002}}\n`,
].join('---\n'))
const loaded = await loadPolicy(join(dir, 'policy.d'), { generation: 1, trustDomain: 'cluster.local', localNode: 'node-a' })
if (!loaded.ok) throw new Error(loaded.problems.map((p) => p.message).join('; '))
const snapshot = loaded.snapshot
const certDir = await nodeCertDir(dir, 'node-a')
const certs = new CertManager({ mode: 'ca', certDir, trustDomain: 'cluster.local', node: 'node-a', log, watch: false, resyncMs: 0 })
t.teardown(() => certs.close())
await certs.start([ID('echo')])

// The attacker's identity: a valid leaf for t/client, as files.
const leaf = await (await NodeIssuer.load(certDir, 'cluster.local', 'node-a')).mint(ID('client'), 3_600_000)
const files = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), chain: join(dir, 'chain.pem') }
writeFileSync(files.cert, leaf.certPem)
writeFileSync(files.key, leaf.keyPem, { mode: 0o600 })
writeFileSync(files.chain, leaf.chainPem)

async function hbone(t: Test): Promise<number> {
  const registry = new Registry()
  const verifier = new PeerVerifier(() => ({ ...certs.trust(), nodesOf: (id) => nodesByIdentity(snapshot).get(id) }), log, registry)
  const telemetry = new ConnectionTelemetry(tcpMetrics(registry), log)
  const http = inboundHttp(() => snapshot, log, registry, telemetry)
  t.teardown(() => http.destroy())
  const server = new HboneServer({ host: '127.0.0.1', port: 0, certs, verifier, snapshot: () => snapshot, log, telemetry, registry, http })
  const { port } = await server.listen()
  t.teardown(() => { server.destroy(); return server.close() })
  return port
}

/** Runs the peer; resolves with its exit code, its stdout lines and its stderr. */
function run(args: string[]): Promise<{ code: number; lines: string[]; stderr: string }> {
  return new Promise((resolve) => {
    execFile(process.execPath, [PEER, ...args], { timeout: 20_000 }, (err, stdout, stderr) => {
      resolve({ code: err ? (typeof err.code === 'number' ? err.code : -1) : 0, lines: stdout.split('\n').filter(Boolean), stderr })
    })
  })
}

/** The peer in one mode against a fresh server: exit 0 and exactly one JSON line. */
async function peer(t: Test, spec: Record<string, unknown>): Promise<Result> {
  const port = await hbone(t)
  const r = await run([JSON.stringify({ host: '127.0.0.1', port, ...files, expected: ID('echo'), authority: `127.0.0.1:${echoPort}`, durationMs: 10_000, ...spec })])
  t.equal(r.code, 0, `exits 0 (stderr: ${r.stderr.slice(-500)})`)
  t.equal(r.lines.length, 1, 'prints one line on stdout')
  const result = JSON.parse(r.lines[0] ?? '{}') as Result
  t.comment(r.lines[0])
  t.equal(result.mode, spec.mode)
  t.notOk(result.timedOut, 'finished within its own bounds')
  return result
}

t.test('ok: sequential echoes through CONNECT streams', async (t) => {
  const r = await peer(t, { mode: 'ok', streams: 5 })
  t.match(r, { connections: 1, streamsOpened: 5, status: { 200: 5 }, successes: 5, failures: 0 })
  t.type(r.latencyMs.p50, 'number')
  t.type(r.latencyMs.p99, 'number')
})

t.test('drop: 2 sessions × 3 streams answered 200, then the sockets dropped', async (t) => {
  const r = await peer(t, { mode: 'drop', connections: 2, streams: 3 })
  t.match(r, { connections: 2, streamsOpened: 6, status: { 200: 6 }, ended: 0 })
})

t.test('bogus-authority: 200 CONNECTs to a 3000-byte authority, indexed by HPACK', async (t) => {
  const r = await peer(t, { mode: 'bogus-authority', streams: 200 })
  t.equal(r.authoritySize, 3000)
  t.ok(r.connections >= 1)
  t.ok(r.streamsOpened >= 1 && r.streamsOpened <= 200, `${r.streamsOpened} streams opened`)
  t.ok(r.status['400'] >= 1, 'answered 400')
  t.same(Object.keys(r.status).filter((s) => s !== '400'), [], 'only 400s')
  t.equal(r.streamsOpened + r.unsent, 200, 'the budget is accounted for')
  // Sent in full every time, 200 authorities would be 600 kB: HPACK sent it once.
  t.ok(r.bytesWritten < 100_000, `${r.bytesWritten} bytes written`)
})

t.test('rapid-reset: CONNECT + RST_STREAM(CANCEL) for 1 s', async (t) => {
  const r = await peer(t, { mode: 'rapid-reset', durationMs: 1000, connections: 2 })
  t.ok(r.resetsSent > 0, `${r.resetsSent} resets sent`)
  t.equal(r.streamsOpened, r.resetsSent, 'every stream opened was reset')
  t.ok(r.connections >= 2, `${r.connections} sessions`)
  t.ok(r.ms >= 950 && r.ms < 5000, `ran ${r.ms} ms`)
  // HEADERS + RST_STREAM are about 30 bytes: they were written, not cancelled inside nghttp2
  // (a stalled session may hold up to 100 that never went out).
  const written = r.resetsSent - 100 * r.stalledSessions
  t.ok(r.bytesWritten >= 20 * written, `${r.bytesWritten} HTTP/2 bytes for ${r.resetsSent} resets`)
})

t.test('idle-tcp: 5 silent TCP connections held 500 ms', async (t) => {
  const r = await peer(t, { mode: 'idle-tcp', connections: 5, holdMs: 500 })
  t.equal(r.connections, 5)
  t.ok(r.closedByServer <= 5)
  t.ok(r.closedByServer === 5 || r.ms >= 490, `held ${r.ms} ms`)
  t.equal(r.streamsOpened, 0)
})

t.test('silent-hello: 3 connections send a real ClientHello, then nothing', async (t) => {
  const r = await peer(t, { mode: 'silent-hello', connections: 3, holdMs: 500 })
  t.equal(r.connections, 3)
  t.ok(r.helloBytes > 100, `${r.helloBytes}-byte ClientHello`)
  t.same(r.replies, { handshake: 3 }, 'the server answered each with its handshake flight')
  t.ok(r.closedByServer === 3 || r.ms >= 490, `held ${r.ms} ms`)
  t.hasProp(r.closeMs, 'median')
})

t.test('no-read: 5 streams with huge windows, written to and never read', async (t) => {
  const r = await peer(t, { mode: 'no-read', streams: 5, holdMs: 300 })
  t.match(r, { connections: 1, streamsOpened: 5, got200: 5, sent: 5 * 1024, status: { 200: 5 } })
})

t.test('churn: 2 rounds of held and dropped streams', async (t) => {
  const r = await peer(t, { mode: 'churn', rounds: 2, connections: 2, streams: 2, holdMs: 100 })
  t.match(r, { rounds: 2, connections: 4, streamsOpened: 8, status: { 200: 8 } })
})

t.test('a bad spec prints the usage and exits 2', async (t) => {
  for (const args of [[], ['not json'], [JSON.stringify({ host: '127.0.0.1', port: 1, mode: 'nope' })]]) {
    const r = await run(args)
    t.equal(r.code, 2)
    t.same(r.lines, [])
    t.match(r.stderr, /usage: node hbone-peer\.ts/)
  }
})
