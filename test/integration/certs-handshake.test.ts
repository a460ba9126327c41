// Real TLS 1.3 handshakes between processes: hostmesh's server side runs in a child process
// (test/helpers/tls-peer.ts: CertManager in CA mode, serverTlsOptions, PeerVerifier), and
// clients connect from this process: hostmesh's client side (connectVerified) or a hostile
// client presenting crafted certificates. openssl s_client is a client too.
import { execFile } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { connect, createSecureContext, type TLSSocket } from 'node:tls'
import { Registry } from 'prom-client'
import pino from 'pino'
import t, { type Test } from 'tap'
import { TlsPeerError } from '../../certs/errors.ts'
import { serverName } from '../../certs/spiffe.ts'
import { connectVerified, PeerVerifier } from '../../certs/tls.ts'
import { parseCertificates } from '../../certs/pem.ts'
import { certDirFor, id, pki, quiet, startPeer, TD, type LeafFiles, type Peer, type Pki } from '../helpers/pki.ts'

const PAYMENTS = id('shop', 'payments') // hosted on node-a, served by the peer process
const CHECKOUT = id('shop', 'checkout') // hosted on node-b, the usual client
const HOSTS = { [PAYMENTS]: ['node-a'], [CHECKOUT]: ['node-b'] }
const log = pino({ level: 'silent' })
const DAY = 86_400_000

interface Mesh {
  p: Pki
  root: string
  nodeA: string
  nodeB: string
  server: Peer
}

async function mesh(t: Test, bundleExtra = ''): Promise<Mesh> {
  const p = pki(t)
  const root = await p.root('root')
  const nodeA = await p.node(root, 'node-a')
  const nodeB = await p.node(root, 'node-b')
  const bundle = readFileSync(`${nodeA}/bundle.pem`, 'utf8') + bundleExtra
  const server = await startPeer(t, { role: 'server', mode: 'ca', certDir: certDirFor(p, nodeA, bundle), node: 'node-a', trustDomain: TD, identities: [PAYMENTS], hosts: HOSTS })
  return { p, root, nodeA, nodeB, server }
}

/** A hostile client: presents `leaf` (or nothing), sends SNI for `to`, and reads what comes back. */
function rawClient(port: number, leaf: LeafFiles | undefined, to = PAYMENTS): Promise<{ data: string; error?: string }> {
  return new Promise((resolve) => {
    const s = connect({
      host: '127.0.0.1', port, servername: serverName(to)!, minVersion: 'TLSv1.3', rejectUnauthorized: false, ALPNProtocols: ['h2'],
      ...(leaf ? { cert: readFileSync(leaf.cert, 'utf8') + readFileSync(leaf.chain, 'utf8'), key: readFileSync(leaf.key) } : {}),
    })
    let data = ''
    s.on('data', (d: Buffer) => { data += d.toString(); if (data.includes('\n')) s.end() })
    s.on('error', (err) => resolve({ data, error: (err as { code?: string }).code ?? err.message }))
    s.on('close', () => resolve({ data }))
    setTimeout(() => s.destroy(), 5000).unref()
  })
}

function clientContext(leaf: LeafFiles, bundlePem: string) {
  return createSecureContext({ cert: readFileSync(leaf.cert, 'utf8') + readFileSync(leaf.chain, 'utf8'), key: readFileSync(leaf.key), ca: bundlePem, minVersion: 'TLSv1.3' })
}

function verifierFor(bundlePem: string, registry = new Registry()): PeerVerifier {
  const roots = parseCertificates(bundlePem, 'bundle.pem')
  const hosts = new Map(Object.entries(HOSTS).map(([k, v]) => [k, new Set(v)]))
  return new PeerVerifier(() => ({ trustDomain: TD, roots, nodesOf: (i) => hosts.get(i) }), log, registry)
}

async function verdictFor(server: Peer, n: number): Promise<Record<string, unknown>> {
  return server.waitFor((e) => e.event === 'peer' && server.events.filter((x) => x.event === 'peer').indexOf(e) === n)
}

t.test('a good peer is accepted on both sides', async (t) => {
  const m = await mesh(t)
  const bundle = readFileSync(`${m.nodeA}/bundle.pem`, 'utf8')
  const leaf = await m.p.leaf(m.nodeB, CHECKOUT)
  const { socket } = await quiet(connectVerified({ host: '127.0.0.1', port: m.server.port, context: clientContext(leaf, bundle), expected: PAYMENTS }, verifierFor(bundle)))
  t.teardown(() => socket.destroy())
  t.equal(socket.getProtocol(), 'TLSv1.3')
  t.equal(socket.alpnProtocol, 'h2')
  const hello = await firstLine(socket)
  t.match(hello, new RegExp(`^hello ${CHECKOUT} [0-9a-f]+$`), 'the server saw the client identity')
  t.match(await verdictFor(m.server, 0), { ok: true, identity: CHECKOUT, node: 'node-b' })
})

t.test('the server refuses: foreign CA, expired, not yet valid, another node\'s CA, no certificate', async (t) => {
  const m = await mesh(t)
  const foreignRoot = await m.p.root('foreign')
  const foreignB = await m.p.node(foreignRoot, 'node-b')
  const nodeC = await m.p.node(m.root, 'node-c')
  const cases: Array<[string, LeafFiles | undefined, string]> = [
    ['foreign CA', await m.p.leaf(foreignB, CHECKOUT), 'untrusted'],
    ['expired', await m.p.leaf(m.nodeB, CHECKOUT, { now: new Date(Date.now() - 3 * DAY), ttlMs: 3_600_000 }), 'expired'],
    ['not yet valid', await m.p.leaf(m.nodeB, CHECKOUT, { now: new Date(Date.now() + 2 * DAY) }), 'not_yet_valid'],
    // node-c's CA minting the identity of a workload that policy places on node-a.
    ['another node\'s CA claims a workload of this node', await m.p.leaf(nodeC, PAYMENTS), 'wrong_node'],
    ['no client certificate', undefined, 'no_certificate'],
  ]
  for (const [i, [name, leaf, reason]] of cases.entries()) {
    const r = await rawClient(m.server.port, leaf)
    t.notMatch(r.data, /hello/, `${name}: no application data`)
    t.match(await verdictFor(m.server, i), { ok: false, reason }, `${name}: refused as ${reason}`)
  }
})

t.test('the client refuses: wrong identity, foreign CA, another node\'s CA', async (t) => {
  const p = pki(t)
  const root = await p.root('root')
  const nodeA = await p.node(root, 'node-a')
  const nodeB = await p.node(root, 'node-b')
  const nodeC = await p.node(root, 'node-c')
  const foreign = await p.node(await p.root('foreign'), 'node-a')
  const bundle = readFileSync(`${nodeA}/bundle.pem`, 'utf8')
  const registry = new Registry()
  const verifier = verifierFor(bundle, registry)
  const context = clientContext(await p.leaf(nodeB, CHECKOUT), bundle)
  const cases: Array<[string, LeafFiles, string, string]> = [
    ['wrong identity', await p.leaf(nodeA, id('shop', 'ledger')), PAYMENTS, 'wrong_identity'],
    ['foreign CA', await p.leaf(foreign, PAYMENTS), PAYMENTS, 'untrusted'],
    ['another node\'s CA', await p.leaf(nodeC, PAYMENTS), PAYMENTS, 'wrong_node'],
  ]
  for (const [name, leaf, expected, reason] of cases) {
    const raw = await startPeer(t, { role: 'raw-server', cert: leaf.cert, key: leaf.key, chain: leaf.chain })
    const err = await connectVerified({ host: '127.0.0.1', port: raw.port, context, expected }, verifier).then((v) => { v.socket.destroy(); return undefined }, (e: unknown) => e)
    t.ok(err instanceof TlsPeerError, `${name}: refused`)
    t.equal((err as TlsPeerError).reason, reason, `${name}: reason ${reason}`)
  }
  const metrics = await registry.metrics()
  for (const reason of ['wrong_identity', 'untrusted', 'wrong_node']) t.match(metrics, new RegExp(`hostmesh_tls_handshake_failures_total\\{reason="${reason}"\\} 1\\n`))
})

t.test('a bundle with two roots accepts certificates from either', async (t) => {
  const p = pki(t)
  const r1 = await p.root('r1')
  const r2 = await p.root('r2')
  const nodeA = await p.node(r1, 'node-a')
  const bundle = readFileSync(`${r1}/root-cert.pem`, 'utf8') + readFileSync(`${r2}/root-cert.pem`, 'utf8')
  const server = await startPeer(t, { role: 'server', mode: 'ca', certDir: certDirFor(p, nodeA, bundle), node: 'node-a', trustDomain: TD, identities: [PAYMENTS], hosts: HOSTS })
  for (const [i, r] of [r1, r2].entries()) {
    const nodeB = await p.node(r, 'node-b')
    const { socket } = await quiet(connectVerified({ host: '127.0.0.1', port: server.port, context: clientContext(await p.leaf(nodeB, CHECKOUT), bundle), expected: PAYMENTS }, verifierFor(bundle)))
    t.match(await firstLine(socket), /^hello /, `client under root ${i + 1} accepted`)
    socket.destroy()
    t.match(await verdictFor(server, i), { ok: true, identity: CHECKOUT })
  }
})

t.test('openssl s_client: TLS 1.3 with a client certificate works; TLS 1.2 and an unknown server name are refused', async (t) => {
  const m = await mesh(t)
  const leaf = await m.p.leaf(m.nodeB, CHECKOUT)
  const sClient = (...extra: string[]): Promise<string> => new Promise((resolve) => {
    // stdin closes at once: s_client completes the handshake, prints it, and exits.
    const child = execFile('openssl', ['s_client', '-connect', `127.0.0.1:${m.server.port}`, '-CAfile', `${m.nodeA}/bundle.pem`, ...extra], { timeout: 10_000 }, (_err, stdout, stderr) => resolve(stdout + stderr))
    child.stdin!.end()
  })
  const ok = await sClient('-servername', serverName(PAYMENTS)!, '-cert', leaf.cert, '-key', leaf.key, '-cert_chain', leaf.chain, '-alpn', 'h2')
  t.match(ok, /Protocol\s*:\s*TLSv1\.3|New, TLSv1\.3/, 'negotiated TLS 1.3')
  t.match(ok, /Verify return code: 0 \(ok\)/, 'openssl verified the server chain against the bundle (name constraints included)')
  t.match(await verdictFor(m.server, 0), { ok: true, identity: CHECKOUT })
  const old = await sClient('-servername', serverName(PAYMENTS)!, '-cert', leaf.cert, '-key', leaf.key, '-tls1_2')
  t.notMatch(old, /New, TLSv1\.2/, 'TLS 1.2 not negotiated')
  await m.server.waitFor((e) => e.event === 'handshake-failed')
  const unknown = await sClient('-servername', serverName(id('shop', 'nobody'))!, '-cert', leaf.cert, '-key', leaf.key)
  t.notMatch(unknown, /New, TLSv1\.3/, 'unknown server name: no handshake')
  const why = await m.server.waitFor((e) => e.event === 'handshake-failed' && e.reason === 'unknown_server_name')
  t.match(why.message, /no local workload for TLS server name/, 'the server says why')
})

function firstLine(socket: TLSSocket): Promise<string> {
  return new Promise((resolve, reject) => {
    let buf = ''
    socket.on('data', (d: Buffer) => { buf += d.toString(); const i = buf.indexOf('\n'); if (i >= 0) resolve(buf.slice(0, i)) })
    socket.once('error', reject)
    socket.once('close', () => reject(new Error(`closed before a line: ${JSON.stringify(buf)}`)))
  })
}
