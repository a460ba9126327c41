// certs/tls.ts in one process: acceptVerified and connectVerified against each other, and the
// ways a server handshake fails (TLS 1.2, no SNI, unknown SNI, a silent client), each counted.
import { connect as netConnect, createServer, type Server, type Socket } from 'node:net'
import { connect } from 'node:tls'
import pino from 'pino'
import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { CertManager } from '../../../certs/manager.ts'
import { serverName } from '../../../certs/spiffe.ts'
import { acceptVerified, connectVerified, PeerVerifier, type VerifiedSocket } from '../../../certs/tls.ts'
import { certDirFor, id, pki, quiet, TD } from '../../helpers/pki.ts'

const A = id('shop', 'payments')
const B = id('shop', 'checkout')
const log = pino({ level: 'silent' })

async function setup(t: Test) {
  const p = pki(t)
  const nodeA = await p.node(await p.root('root'), 'node-a')
  const certs = new CertManager({ mode: 'ca', certDir: certDirFor(p, nodeA), trustDomain: TD, node: 'node-a', log, watch: false, resyncMs: 0 })
  t.teardown(() => certs.close())
  await certs.start([A, B])
  const registry = new Registry()
  const hosts = new Map([[A, new Set(['node-a'])], [B, new Set(['node-a'])]])
  const verifier = new PeerVerifier(() => ({ ...certs.trust(), nodesOf: (i) => hosts.get(i) }), log, registry)
  const accepted: Array<Promise<VerifiedSocket>> = []
  const server: Server = createServer((raw) => {
    const p = acceptVerified(raw, certs, verifier, 300)
    p.catch(() => undefined)
    accepted.push(p)
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.close() })
  return { certs, verifier, registry, accepted, port: (server.address() as { port: number }).port }
}

t.test('both sides verify each other in one process', async (t) => {
  const s = await setup(t)
  const client = await quiet(connectVerified({ host: '127.0.0.1', port: s.port, context: await s.certs.ensure(B), expected: A }, s.verifier))
  t.teardown(() => client.socket.destroy())
  t.match(client, { identity: A, node: 'node-a' })
  const server = await quiet(s.accepted[0]!)
  t.teardown(() => server.socket.destroy())
  t.match(server, { identity: B, node: 'node-a' })
  t.equal(server.leaf.serialNumber.toLowerCase(), s.certs.views().find((v) => v.identity === B)!.serial)
  server.socket.write('x')
  await new Promise((r) => client.socket.once('data', r))
  t.pass('data flows after verification')
  // A reset after the handshake is the connection's business, not a handshake failure.
  // The client closes with unread data in its buffer, so the kernel answers with a reset.
  const closed = new Promise((r) => server.socket.once('close', r))
  const errored = new Promise<string>((r) => server.socket.once('error', (e: NodeJS.ErrnoException) => r(e.code ?? e.message)))
  client.socket.pause()
  server.socket.write(Buffer.alloc(4 << 20))
  await new Promise((r) => setTimeout(r, 50))
  client.socket.destroy()
  t.match(await errored, /ECONNRESET|EPIPE/, 'the server socket saw the reset')
  await closed
  t.match(await s.registry.metrics(), /hostmesh_tls_handshake_failures_total\{reason="handshake"\} 0\n/)
})

t.test('handshake failures are refused and counted by reason', async (t) => {
  const s = await setup(t)
  const attempts: Array<[string, () => Socket]> = [
    ['TLS 1.2 only', () => connect({ host: '127.0.0.1', port: s.port, servername: serverName(A)!, maxVersion: 'TLSv1.2', rejectUnauthorized: false })],
    ['no SNI', () => connect({ host: '127.0.0.1', port: s.port, rejectUnauthorized: false })],
    ['unknown SNI', () => connect({ host: '127.0.0.1', port: s.port, servername: serverName(id('shop', 'ghost'))!, rejectUnauthorized: false })],
    ['silent client', () => netConnect({ host: '127.0.0.1', port: s.port })],
  ]
  for (const [i, [name, open]] of attempts.entries()) {
    const sock = open()
    sock.on('error', () => undefined)
    t.teardown(() => sock.destroy())
    while (s.accepted.length <= i) await new Promise((r) => setTimeout(r, 5))
    await t.rejects(s.accepted[i]!, { code: 'HOSTMESH_ERR_TLS_PEER' }, `${name}: refused`)
  }
  const reasons = await Promise.all(s.accepted.map((p) => p.then(() => '', (e: { reason: string }) => e.reason)))
  t.same(reasons, ['handshake', 'handshake', 'unknown_server_name', 'handshake'])
  const metrics = await s.registry.metrics()
  t.match(metrics, /hostmesh_tls_handshake_failures_total\{reason="handshake"\} 3/)
  t.match(metrics, /hostmesh_tls_handshake_failures_total\{reason="unknown_server_name"\} 1/)
})

t.test('a client handshake that never completes times out', async (t) => {
  const silent = createServer(() => undefined)
  await new Promise<void>((r) => silent.listen(0, '127.0.0.1', r))
  t.teardown(() => { silent.close() })
  const s = await setup(t)
  await t.rejects(connectVerified({ host: '127.0.0.1', port: (silent.address() as { port: number }).port, context: await s.certs.ensure(B), expected: A, timeoutMs: 200 }, s.verifier), { code: 'HOSTMESH_ERR_TLS_PEER', reason: 'handshake' })
})
