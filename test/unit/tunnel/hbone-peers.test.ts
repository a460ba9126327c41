// The HBONE server against peers that hold a valid certificate and misbehave, on loopback with
// raw HTTP/2 sessions (test/helpers/hbone.ts): a client that goes away without ending its
// streams, bad requests on repeat, rapid reset, more connections or handshakes than allowed,
// and more tunnels than a peer may hold. Each ends with what the server still holds.
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import { connect, createServer, type AddressInfo } from 'node:net'
import { execFile } from 'node:child_process'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { promisify } from 'node:util'
import t from 'tap'
import { NodeIssuer } from '../../../certs/issuer.ts'
import { serverName } from '../../../certs/spiffe.ts'
import { HboneClientPool } from '../../../daemon/tunnel/client-pool.ts'
import { until as pollUntil } from '../../helpers/admin.ts'
import { hboneSetup, ID, type HboneSetup } from '../../helpers/hbone.ts'

const { NGHTTP2_CANCEL, NGHTTP2_ENHANCE_YOUR_CALM } = http2.constants
const ABUSE = new URL('../../../scripts/netns/workloads/abuse-client.ts', import.meta.url).pathname
const run = promisify(execFile)

/** Polls `check` every 20 ms for up to `ms` (3 s). */
const until = (check: () => boolean | Promise<boolean>, what: string, ms = 3000): Promise<void> => pollUntil(check, what, ms, 20)

function connectStream(session: ClientHttp2Session, authority: string): ClientHttp2Stream {
  const stream = session.request({ ':method': 'CONNECT', ':authority': authority }, { endStream: false })
  stream.on('error', () => undefined)
  return stream
}

function status(stream: ClientHttp2Stream): Promise<number> {
  return new Promise((resolve) => {
    stream.once('response', (h) => resolve(Number(h[':status'])))
    stream.once('close', () => resolve(0))
  })
}

const accessLines = (s: HboneSetup) => s.logs().filter((l) => l.access === 'tcp')

/** opened = closed for every series of the Istio TCP counters. */
async function balanced(s: HboneSetup): Promise<boolean> {
  const opened = await s.registry.getSingleMetric('istio_tcp_connections_opened_total')!.get()
  const closed = await s.registry.getSingleMetric('istio_tcp_connections_closed_total')!.get()
  const key = (l: Record<string, unknown>) => JSON.stringify(l)
  const c = new Map(closed.values.map((v) => [key(v.labels), v.value]))
  return opened.values.every((v) => c.get(key(v.labels)) === v.value) && opened.values.length === closed.values.length
}

t.test('a client that drops its connection without ending its streams leaves nothing open', async (t) => {
  const s = await hboneSetup(t)
  for (let round = 0; round < 3; round++) {
    const { session, socket } = await s.raw('client')
    const streams = Array.from({ length: 4 }, () => connectStream(session, `127.0.0.1:${s.echoPort}`))
    t.same(await Promise.all(streams.map(status)), [200, 200, 200, 200])
    // The workload answers and ends its side; the client never ends or resets its own.
    await until(() => s.workloadSockets.length === 4 * (round + 1), 'the workload accepted every tunnel')
    for (const ws of s.workloadSockets.slice(-4)) ws.end('bye')
    await Promise.all(streams.map((x) => new Promise((r) => { x.resume(); x.once('end', r) })))
    socket.destroy()
  }
  await until(() => s.server.tunnels === 0, 'no tunnel is open')
  await until(() => s.workloadSockets.every((w) => w.destroyed), 'every workload-side socket is closed')
  await until(() => balanced(s), 'opened = closed for every series')
  t.equal(await s.metric('istio_tcp_connections_closed_total', { reporter: 'destination' }), 12, 'every tunnel was closed once')
  t.equal(accessLines(s).length, 12, 'one access-log line per tunnel')
  const revoked = s.server.recheck(await s.setSnapshot('intruder'))
  t.equal(revoked, 0, 'a later policy change finds no dead tunnel to revoke')
})

t.test('a session that keeps sending bad requests is destroyed with ENHANCE_YOUR_CALM; log lines stay bounded', async (t) => {
  const s = await hboneSetup(t, { limits: { refusedStreamsBurst: 20 } })
  const { session } = await s.raw('client')
  const goaway = new Promise<number>((r) => session.once('goaway', (code) => r(code)))
  const big = 'a'.repeat(3000) // HPACK-indexed once, then one byte per stream
  const answers = await Promise.all(Array.from({ length: 60 }, () => status(connectStream(session, big))))
  t.equal(await goaway, NGHTTP2_ENHANCE_YOUR_CALM, 'GOAWAY ENHANCE_YOUR_CALM')
  t.ok(answers.every((x) => x === 400 || x === 0), 'answered 400, or cut off with the session')
  const refused = await s.metric('hostmesh_hbone_streams_refused_total', { reason: 'bad_request' })
  t.ok(refused >= 21 && refused < 60, `the session went after its budget of 20 (${refused} refused, not all 60)`)
  t.equal(await s.metric('hostmesh_hbone_sessions_closed_total', { reason: 'abuse' }), 1)
  const lines = s.logs()
  t.ok(lines.length <= 10, `${lines.length} log lines for ${answers.length} bad streams`)
  t.ok(lines.every((l) => JSON.stringify(l).length < 1200), 'no line carries the 3,000-byte value')
  t.equal(s.workloadSockets.length, 0, 'nothing reached the workload')
})

t.test('rapid reset: a stream reset before its answer is not dialled, and the session is destroyed', async (t) => {
  const s = await hboneSetup(t, { limits: { refusedStreamsBurst: 50 } })
  const { session } = await s.raw('client')
  const destroyed = async () => await s.metric('hostmesh_hbone_sessions_closed_total', { reason: 'abuse' }) === 1
  let sent = 0
  // node's client may not notice a GOAWAY that comes with the connection's end: the server's count says.
  for (; sent < 200 && !(await destroyed()); sent++) {
    connectStream(session, `127.0.0.1:${s.echoPort}`).close(NGHTTP2_CANCEL)
    if (sent % 20 === 19) await new Promise((r) => setImmediate(r))
  }
  await until(destroyed, 'the session was destroyed')
  t.ok(sent < 200, `the session was destroyed after ${sent} resets`)
  // Each early reset costs ten of the 50.
  t.ok(await s.metric('hostmesh_hbone_streams_refused_total', { reason: 'early_reset' }) >= 5, 'its early resets were counted')
  // A reset that arrives after the dial started abandons it; one in the same read as the
  // HEADERS is never dialled at all.
  t.ok(s.workloadSockets.length <= 5, `${s.workloadSockets.length} of ${sent} reset streams reached the workload`)
  t.ok(s.logs().length <= 12, `${s.logs().length} log lines`)
})

t.test('connection limits: per source, and the handshake queue', async (t) => {
  const s = await hboneSetup(t, { limits: { maxConnectionsPerSource: 3, maxHandshakesPerSource: 1, handshakeTimeoutMs: 400 } })
  // Three silent TCP connections: the first holds the one handshake slot, the others queue.
  const idle = Array.from({ length: 3 }, () => connect(s.port, '127.0.0.1'))
  for (const c of idle) c.on('error', () => undefined)
  await Promise.all(idle.map((c) => new Promise((r) => c.once('connect', r))))
  const refused = connect(s.port, '127.0.0.1')
  refused.on('error', () => undefined)
  await new Promise((r) => refused.once('close', r))
  t.equal(await s.metric('hostmesh_hbone_connections_refused_total', { reason: 'connections_per_source' }), 1, 'a fourth connection is refused at once')
  const started = Date.now()
  await Promise.all(idle.map((c) => new Promise((r) => c.once('close', r))))
  t.ok(Date.now() - started < 2000, 'silent connections are closed by the handshake timeout, queueing included')
  // Now a real client gets through.
  const stream = await s.open('client')
  stream.destroy()
  t.pass('a legitimate client connects once the slots are free')
})

t.test('tunnels per peer: over the limit a CONNECT gets 503 (UO), and the limit frees as tunnels close', async (t) => {
  const s = await hboneSetup(t, { limits: { maxTunnelsPerPeer: 2 } })
  const a = await s.open('client')
  const b = await s.open('client')
  await t.rejects(s.open('client'), { code: 'HOSTMESH_ERR_TUNNEL', status: 503 })
  t.equal(await s.metric('hostmesh_hbone_streams_refused_total', { reason: 'tunnels_per_peer' }), 1)
  t.match(accessLines(s).find((l) => l.responseFlags === 'UO'), { reporter: 'destination', src: { principal: 'spiffe://cluster.local/ns/t/sa/client' } })
  a.destroy()
  await until(() => s.server.tunnels === 1, 'one tunnel left')
  const c = await s.open('client')
  t.ok(c, 'a tunnel again once one closed')
  b.destroy()
  c.destroy()
})

t.test('streams nobody reads from a workload that sends without end: released when the client goes, though node never reports that close', async (t) => {
  const chunk = Buffer.alloc(64 << 10, 'x')
  // node may never report the close of a connection whose writes are stuck: keepalive does.
  const s = await hboneSetup(t, {
    limits: { keepaliveIntervalMs: 200, keepaliveTimeoutMs: 300 },
    workload: (w) => {
      w.resume()
      const pump = (): void => { while (!w.destroyed && w.write(chunk)); if (!w.destroyed) w.once('drain', pump) }
      pump()
    },
  })
  const { session, socket } = await s.raw('client', { initialWindowSize: 2 ** 31 - 1 })
  session.setLocalWindowSize(2 ** 31 - 1)
  const streams = Array.from({ length: 20 }, () => connectStream(session, `127.0.0.1:${s.echoPort}`))
  for (const x of streams) {
    x.pause()
    x.write(Buffer.alloc(1024))
  }
  t.same(new Set(await Promise.all(streams.map(status))), new Set([200]))
  await new Promise((r) => setTimeout(r, 500))
  socket.destroy()
  await until(() => s.server.tunnels === 0, 'no tunnel is open')
  await until(() => s.workloadSockets.every((w) => w.destroyed), 'every workload-side socket is closed')
  await until(() => balanced(s), 'opened = closed for every series')
})

t.test('keepalive: a black-holed session is declared dead at both ends, and its tunnels end', async (t) => {
  const keepalive = { keepaliveIntervalMs: 300, keepaliveTimeoutMs: 1000 }
  const s = await hboneSetup(t, { limits: keepalive })
  // A relay between the client pool and :15008 that can start dropping everything, both ways.
  let blackhole = false
  const relay = createServer((inbound) => {
    const out = connect(s.port, '127.0.0.1')
    for (const x of [inbound, out]) x.on('error', () => undefined)
    inbound.on('data', (c: Buffer) => { if (!blackhole) out.write(c) })
    out.on('data', (c: Buffer) => { if (!blackhole) inbound.write(c) })
    t.teardown(() => { inbound.destroy(); out.destroy() })
  })
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r))
  t.teardown(() => relay.close())
  // A connect timeout far longer than the keepalive's: a CONNECT caught on the dead session must not wait for it.
  const pool = new HboneClientPool(s.certs, s.verifier, { intervalMs: keepalive.keepaliveIntervalMs, timeoutMs: keepalive.keepaliveTimeoutMs }, 60_000)
  t.teardown(() => pool.destroy())
  const target = { source: ID('client'), destination: ID('echo'), node: { address: '127.0.0.1', port: (relay.address() as AddressInfo).port }, address: '127.0.0.1', port: s.echoPort }
  const stream = await pool.open(target)
  stream.on('error', () => undefined)
  // Alive while quiet: PINGs are answered.
  await new Promise((r) => setTimeout(r, 2500))
  t.equal(s.server.tunnels, 1, 'an idle tunnel on a live session stays open')
  blackhole = true
  const closed = new Promise((r) => stream.once('close', r))
  const pending = pool.open(target).then(() => 'opened', (err: Error) => err.message)
  await until(() => s.server.tunnels === 0, 'the server ended the tunnel of its dead session', 6000)
  await closed
  t.pass('the client ended its side too')
  t.match(await pending, /the HBONE session ended before an answer/, 'a CONNECT waiting on the dead session failed with it, not at its 60 s timeout')
  await until(() => pool.sessions === 0, 'the pool dropped the dead session')
  t.equal(await s.metric('hostmesh_hbone_sessions_closed_total', { reason: 'keepalive' }), 1)
  await until(() => s.workloadSockets.every((w) => w.destroyed), 'the workload-side socket is closed')
})

t.test('a spent denial budget ends the session gracefully: tunnels already open on it keep working', async (t) => {
  const s = await hboneSetup(t, { limits: { maxTunnelsPerPeer: 4, refusedStreamsBurst: 3, refusedStreamsPerSecond: 0.001 } })
  // hostmesh's own pool: allowed tunnels and refused ones share one session (one identity pair).
  const held = await Promise.all(Array.from({ length: 4 }, () => s.open('client')))
  for (const x of held) x.on('error', () => undefined)
  const refused = await Promise.allSettled(Array.from({ length: 4 }, () => s.open('client')))
  t.same(refused.map((r) => r.status), ['rejected', 'rejected', 'rejected', 'rejected'], 'over the tunnel limit')
  await until(async () => await s.metric('hostmesh_hbone_sessions_closed_total', { reason: 'denial' }) === 1, 'the session went away')
  for (const [i, x] of held.entries()) {
    const back = new Promise<string>((r) => x.once('data', (c: Buffer) => r(c.toString())))
    x.write(`still here ${i}`)
    t.equal(await back, `still here ${i}`, `held tunnel ${i} still carries data`)
  }
  t.equal(held.filter((x) => x.destroyed).length, 0, 'none was reset')
})

t.test('a client that hangs up mid-handshake frees its handshake slot at once', async (t) => {
  const s = await hboneSetup(t, { limits: { maxHandshakes: 1, maxHandshakesPerSource: 1, handshakeTimeoutMs: 5000 } })
  const half = connect(s.port, '127.0.0.1')
  half.on('error', () => undefined)
  await new Promise((r) => half.once('connect', r))
  // The start of a TLS record, then FIN.
  half.end(Buffer.from([0x16, 0x03, 0x01, 0x00, 0x10, 0x01]))
  await new Promise((r) => setTimeout(r, 100))
  const started = Date.now()
  const stream = await s.open('client')
  stream.destroy()
  t.ok(Date.now() - started < 2000, `a legitimate handshake did not wait for the timeout (${Date.now() - started} ms)`)
})

t.test('CONNECTs to a workload port with nothing listening cost the session: dials and access-log lines stay bounded', async (t) => {
  const s = await hboneSetup(t, { limits: { refusedStreamsBurst: 10, refusedStreamsPerSecond: 0.001 } })
  const { session } = await s.raw('client')
  // One batch: as many as the session may have open (100), all read before the first 503.
  const first = await Promise.all(Array.from({ length: 100 }, () => status(connectStream(session, `127.0.0.1:${s.downPort}`))))
  t.equal(first.filter((x) => x === 503).length, 100)
  await until(async () => await s.metric('hostmesh_hbone_sessions_closed_total', { reason: 'denial' }) === 1, 'the session went away')
  const lines = accessLines(s).length
  // Nothing more on that session, and the same peer's next session waits.
  const second = await Promise.all(Array.from({ length: 100 }, () => status(connectStream(session, `127.0.0.1:${s.downPort}`))))
  t.equal(second.filter((x) => x === 503).length, 0, 'the going-away session processes no new stream')
  const again = await s.raw('client').then(({ session: next }) => status(connectStream(next, `127.0.0.1:${s.downPort}`)))
  t.not(again, 503, 'and a new session of that identity from that address is not served for now')
  t.equal(await s.metric('hostmesh_hbone_connections_refused_total', { reason: 'session_rate' }), 1)
  t.equal(accessLines(s).length, lines, `no more access-log lines than the first batch (${lines})`)
})

t.test('a drain ends when the last tunnel does: the server closes each gone-away session itself', async (t) => {
  const s = await hboneSetup(t)
  // Two sessions: one idle at the drain, one carrying a tunnel that finishes later.
  const idle = await s.raw('client')
  const first = connectStream(idle.session, `127.0.0.1:${s.echoPort}`)
  t.equal(await status(first), 200)
  await until(() => s.workloadSockets.length === 1, 'the first tunnel reached the workload')
  s.workloadSockets[0]!.end()
  first.resume()
  first.end()
  await until(() => s.server.tunnels === 0, 'the first tunnel ended')
  const held = await s.open('client')
  held.on('error', () => undefined)
  let drained = false
  void s.server.close().then(() => { drained = true })
  // node's client ends its socket on the GOAWAY, but the server never reads that FIN: before
  // this fix the idle session (and with it the drain) stayed open until the drain deadline.
  await until(() => s.server.tunnels === 1 && idle.socket.destroyed, 'the idle session is closed while the held tunnel stays')
  const back = new Promise<string>((r) => held.once('data', (c: Buffer) => r(c.toString())))
  held.write('after the GOAWAY')
  t.equal(await back, 'after the GOAWAY', 'the open tunnel still carries data during the drain')
  t.notOk(drained, 'the drain waits for it')
  held.end()
  s.workloadSockets.at(-1)!.end()
  await until(() => drained, 'the drain ended once its last tunnel did')
  t.equal(s.server.tunnels, 0)
})

for (const [attack, reasons] of [['ping', ['flood']], ['settings', ['flood']], ['continuation', ['flood', 'protocol']]] as const) {
  t.test(`an HTTP/2 ${attack} flood ends the session, is counted, and costs its source its new connections for a while`, async (t) => {
    const s = await hboneSetup(t)
    const dir = mkdtempSync(join(tmpdir(), 'hostmesh-flood-'))
    t.teardown(() => rmSync(dir, { recursive: true, force: true }))
    const leaf = await (await NodeIssuer.load(s.certDir, 'cluster.local', 'node-a')).mint(ID('client'), 3_600_000)
    const tls = { cert: join(dir, 'cert.pem'), key: join(dir, 'key.pem'), chain: join(dir, 'chain.pem'), servername: serverName(ID('echo'))! }
    writeFileSync(tls.cert, leaf.certPem)
    writeFileSync(tls.key, leaf.keyPem, { mode: 0o600 })
    writeFileSync(tls.chain, leaf.chainPem)
    const flood = async (): Promise<{ closedByServer: number; connectFailures: Record<string, number> }> => {
      const { stdout } = await run(process.execPath, [ABUSE, JSON.stringify({ mode: 'h2', host: '127.0.0.1', port: s.port, tls, attack, method: 'CONNECT', authority: `127.0.0.1:${s.echoPort}`, reconnect: false, durationMs: 2000 })], { timeout: 20_000, env: { ...process.env, NODE_OPTIONS: '' } })
      return JSON.parse(stdout.trim().split('\n').at(-1)!) as { closedByServer: number; connectFailures: Record<string, number> }
    }
    const first = await flood()
    t.equal(first.closedByServer, 1, `the server ended the session (${JSON.stringify(first).slice(0, 300)})`)
    let closed = 0
    for (const reason of reasons) closed += await s.metric('hostmesh_hbone_sessions_closed_total', { reason })
    t.equal(closed, 1, `counted as ${reasons.join(' or ')}`)
    const again = await flood()
    t.same(again.connectFailures, { ECONNRESET: 1 }, 'its source\'s next connection is refused before TLS')
    await t.rejects(s.open('client'), 'as is a well-behaved session from that source, meanwhile')
    t.ok(await s.metric('hostmesh_hbone_connections_refused_total', { reason: 'connection_rate' }) >= 2, 'over its connection rate')
  })
}

// The server's SETTINGS bind a peer once it has acknowledged them (RFC 9113 §6.5.3); until then
// nghttp2's own limit on CONTINUATION frames bounds a header block (9 frames of 16 KiB).
t.test('a CONNECT whose header list is over 16 KiB is refused before it reaches a workload', async (t) => {
  const s = await hboneSetup(t)
  const { session } = await s.raw('client')
  await new Promise((resolve) => session.once('remoteSettings', resolve))
  t.equal(session.remoteSettings.maxHeaderListSize, 16 << 10, `the server says its limit: ${JSON.stringify(session.remoteSettings)}`)
  const stream = session.request({ ':method': 'CONNECT', ':authority': `127.0.0.1:${s.echoPort}`, 'x-big': 'a'.repeat(20_000) }, { endStream: false })
  const outcome = await new Promise<string>((resolve) => {
    stream.on('response', (h) => resolve(`status ${String(h[':status'])}`))
    stream.on('error', (err: Error & { code?: string }) => resolve(`error ${err.code}`))
    stream.on('close', () => resolve(`closed ${stream.rstCode}`))
  })
  t.notMatch(outcome, /status 200/, `refused: ${outcome}`)
  t.equal(s.workloadSockets.length, 0, 'the workload saw no connection')
  const ok = await s.open('client')
  t.ok(ok, 'a normal CONNECT on the same host still works')
})
