// Rotation between processes: a connection established before a renewal (CA mode) or a file
// swap (file mode) keeps working, and the next handshake sees the new serial. Also: the
// operator's key files are 0600.
import { copyFileSync, mkdirSync, readFileSync, renameSync, statSync } from 'node:fs'
import { join } from 'node:path'
import { createSecureContext, type TLSSocket } from 'node:tls'
import pino from 'pino'
import { Registry } from 'prom-client'
import t from 'tap'
import { fileModeDir } from '../../certs/manager.ts'
import { parseCertificates } from '../../certs/pem.ts'
import { connectVerified, PeerVerifier } from '../../certs/tls.ts'
import { hostmesh } from '../helpers/cli.ts'
import { certDirFor, id, pki, quiet, startPeer, TD, type LeafFiles } from '../helpers/pki.ts'

const PAYMENTS = id('shop', 'payments')
const CHECKOUT = id('shop', 'checkout')

function client(leaf: LeafFiles, bundle: string) {
  const roots = parseCertificates(bundle, 'bundle.pem')
  return {
    context: createSecureContext({ cert: readFileSync(leaf.cert, 'utf8') + readFileSync(leaf.chain, 'utf8'), key: readFileSync(leaf.key), ca: bundle, minVersion: 'TLSv1.3' }),
    verifier: new PeerVerifier(() => ({ trustDomain: TD, roots }), pino({ level: 'silent' }), new Registry()),
  }
}

function lines(socket: TLSSocket): () => Promise<string> {
  let buf = ''
  const waiting: Array<(l: string) => void> = []
  socket.on('data', (d: Buffer) => {
    buf += d.toString()
    for (let i = buf.indexOf('\n'); i >= 0 && waiting.length; i = buf.indexOf('\n')) {
      const line = buf.slice(0, i)
      buf = buf.slice(i + 1)
      waiting.shift()!(line)
    }
  })
  return () => new Promise((resolve, reject) => {
    waiting.push(resolve)
    setTimeout(() => reject(new Error('no line within 5 s')), 5000).unref()
    socket.emit('data', Buffer.alloc(0))
  })
}

const serialOf = (hello: string): string => hello.split(' ')[2]!

t.test('CA mode: a renewal does not touch an open connection; the next handshake gets the new serial', async (t) => {
  const p = pki(t)
  const root = await p.root('root')
  const nodeA = await p.node(root, 'node-a')
  const bundle = readFileSync(join(root, 'bundle.pem'), 'utf8')
  const server = await startPeer(t, { role: 'server', mode: 'ca', certDir: certDirFor(p, nodeA), node: 'node-a', trustDomain: TD, identities: [PAYMENTS], hosts: { [CHECKOUT]: ['node-b'] }, leafTtlMs: 3000 })
  const { context, verifier } = client(await p.leaf(await p.node(root, 'node-b'), CHECKOUT), bundle)
  const { socket: first, leaf: firstLeaf } = await quiet(connectVerified({ host: '127.0.0.1', port: server.port, context, expected: PAYMENTS }, verifier))
  t.teardown(() => first.destroy())
  const read1 = lines(first)
  const serial1 = serialOf(await read1())
  t.equal(serial1, server.events.find((e) => e.event === 'published')!.serial, 'served the published certificate')
  await server.waitFor((e) => e.event === 'published' && e.serial !== serial1)
  first.write('still there?\n')
  t.equal(await read1(), 'still there?', 'the connection made before the renewal still carries data')
  const { socket: second } = await quiet(connectVerified({ host: '127.0.0.1', port: server.port, context, expected: PAYMENTS }, verifier))
  t.teardown(() => second.destroy())
  const serial2 = serialOf(await lines(second)())
  t.not(serial2, serial1, 'a new handshake sees the new serial')
  t.equal(firstLeaf.serialNumber.toLowerCase(), serial1, 'the client verified the old certificate on the old connection')
})

t.test('file mode: swapping the files changes the served certificate without a restart', async (t) => {
  const p = pki(t)
  const root = await p.root('root')
  const nodeA = await p.node(root, 'node-a')
  const bundle = readFileSync(join(root, 'bundle.pem'), 'utf8')
  const certDir = join(p.dir, 'file-mode')
  const dir = fileModeDir(certDir, PAYMENTS)
  mkdirSync(dir, { recursive: true })
  copyFileSync(join(root, 'bundle.pem'), join(certDir, 'bundle.pem'))
  const install = (leaf: LeafFiles): void => {
    for (const f of ['cert', 'key', 'chain'] as const) {
      copyFileSync(leaf[f], join(dir, `.${f}.new`))
      renameSync(join(dir, `.${f}.new`), join(dir, `${f}.pem`))
    }
  }
  const v1 = await p.leaf(nodeA, PAYMENTS)
  install(v1)
  const server = await startPeer(t, { role: 'server', mode: 'file', certDir, node: 'node-a', trustDomain: TD, identities: [PAYMENTS] })
  const { context, verifier } = client(await p.leaf(await p.node(root, 'node-b'), CHECKOUT), bundle)
  const { socket: first } = await quiet(connectVerified({ host: '127.0.0.1', port: server.port, context, expected: PAYMENTS }, verifier))
  t.teardown(() => first.destroy())
  const read1 = lines(first)
  const serial1 = serialOf(await read1())
  const v2 = await p.leaf(nodeA, PAYMENTS)
  const serialV2 = new (await import('node:crypto')).X509Certificate(readFileSync(v2.cert)).serialNumber.toLowerCase()
  install(v2)
  await server.waitFor((e) => e.event === 'published' && e.serial === serialV2)
  const { socket: second } = await quiet(connectVerified({ host: '127.0.0.1', port: server.port, context, expected: PAYMENTS }, verifier))
  t.teardown(() => second.destroy())
  t.equal(serialOf(await lines(second)()), serialV2, 'the swapped-in certificate is served')
  t.not(serialV2, serial1)
  first.write('ping\n')
  t.equal(await read1(), 'ping', 'the connection from before the swap is untouched')
})

t.test('hostmesh ca writes keys 0600 and certificates 0644, and refuses to overwrite without --force', async (t) => {
  const p = pki(t)
  const rootDir = join(p.dir, 'cli-root')
  const nodeDir = join(p.dir, 'cli-node-a')
  const init = hostmesh(['ca', 'init', '--dir', rootDir, '--trust-domain', 'mesh.example'])
  t.equal(init.status, 0, init.stderr)
  t.match(init.stdout, /Root CA for trust domain mesh\.example, valid until 20\d\d-/)
  t.match(init.stdout, /root-key\.pem {2}\(0600\) {2}SECRET: keep offline/)
  const node = hostmesh(['ca', 'node', '--ca', rootDir, '--node', 'node-a', '--out', nodeDir])
  t.equal(node.status, 0, node.stderr)
  t.match(node.stdout, /Node CA for node-a \(spiffe:\/\/mesh\.example\/hostmesh\/node\/node-a\)/)
  t.match(node.stdout, /ca-key\.pem {2}\(0600\) {2}SECRET: to host node-a only, as \/etc\/hostmesh\/certs\/ca-key\.pem/)
  t.match(node.stdout, /bundle\.pem {2}\(0644\) {2}to every host/)
  for (const [dir, file, mode] of [[rootDir, 'root-key.pem', 0o600], [rootDir, 'root-cert.pem', 0o644], [nodeDir, 'ca-key.pem', 0o600], [nodeDir, 'ca-cert.pem', 0o644], [nodeDir, 'bundle.pem', 0o644]] as const) {
    t.equal(statSync(join(dir, file)).mode & 0o777, mode, `${file} is ${mode.toString(8)}`)
  }
  const again = hostmesh(['ca', 'init', '--dir', rootDir])
  t.equal(again.status, 1)
  t.match(again.stderr, new RegExp(`${rootDir}/root-cert\\.pem already exists; refusing to overwrite a CA without --force \\[HOSTMESH_ERR_CERT_EXISTS\\]`))
  const before = readFileSync(join(nodeDir, 'ca-key.pem'), 'utf8')
  t.equal(hostmesh(['ca', 'node', '--ca', rootDir, '--node', 'node-a', '--out', nodeDir]).status, 1)
  t.equal(readFileSync(join(nodeDir, 'ca-key.pem'), 'utf8'), before, 'the key is untouched')
  t.equal(hostmesh(['ca', 'node', '--ca', rootDir, '--node', 'node-a', '--out', nodeDir, '--force']).status, 0, '--force overwrites')
  t.not(readFileSync(join(nodeDir, 'ca-key.pem'), 'utf8'), before)
  t.equal(statSync(join(nodeDir, 'ca-key.pem')).mode & 0o777, 0o600, 'still 0600 after --force')
  for (const [args, msg] of [[['ca'], /expected a subcommand: init or node/], [['ca', 'node', '--ca', rootDir, '--out', nodeDir], /ca node needs --node/], [['ca', 'node', '--ca', rootDir, '--node', 'Node_A', '--out', nodeDir], /is not a lowercase DNS name/], [['ca', 'rotate'], /unknown ca subcommand "rotate"/]] as const) {
    const r = hostmesh([...args])
    t.equal(r.status, 2, args.join(' '))
    t.match(r.stderr, msg)
  }
  const missing = hostmesh(['ca', 'node', '--ca', join(p.dir, 'nowhere'), '--node', 'node-a', '--out', join(p.dir, 'x')])
  t.equal(missing.status, 1)
  t.match(missing.stderr, /nowhere\/root-cert\.pem: cannot read: ENOENT/)
})
