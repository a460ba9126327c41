// CertManager on real files: states, validation before publish, renewal, backoff, file mode
// swaps, bundle reloads, and that no key ever reaches a view.
import { copyFileSync, mkdirSync, readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { CertManager, fileModeDir, type CertManagerOptions } from '../../../certs/manager.ts'
import { certDirFor, id, pki, TD, type LeafFiles } from '../../helpers/pki.ts'
import { logSink } from '../../helpers/log-sink.ts'
import pino from 'pino'

const A = id('shop', 'payments')
const B = id('shop', 'checkout')

function manager(t: Test, opts: Partial<CertManagerOptions> & { certDir: string }) {
  const sink = logSink()
  const m = new CertManager({ mode: 'ca', trustDomain: TD, node: 'node-a', log: pino({ level: 'debug' }, sink.dest), resyncMs: 0, ...opts })
  t.teardown(() => m.close())
  return { m, logs: sink.lines }
}

function next<T extends unknown[]>(m: CertManager, event: 'published' | 'unavailable' | 'reloaded', pred: (...a: T) => boolean = () => true, ms = 8000): Promise<T> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`no ${event} within ${ms} ms`)), ms)
    const on = (...a: unknown[]): void => { if (pred(...(a as T))) { clearTimeout(timer); m.off(event, on); resolve(a as T) } }
    m.on(event, on)
  })
}

t.test('CA mode: Initializing → Available, SNI lookup, views without keys', async (t) => {
  const p = pki(t)
  const nodeA = await p.node(await p.root('root'), 'node-a')
  const { m, logs } = manager(t, { certDir: certDirFor(p, nodeA), watch: false })
  await m.start([A, B])
  t.ok(m.ready)
  const views = m.views()
  t.same(views.map((v) => [v.identity, v.state]), [[B, 'Available'], [A, 'Available']])
  t.match(views[1], { serial: /^[0-9a-f]+$/, issuer: 'CN=hostmesh node node-a, O=cluster.local', notBefore: String, notAfter: String, nextRenewal: String })
  const life = Date.parse(views[1]!.notAfter!) - Date.parse(views[1]!.notBefore!)
  const renewAt = (Date.parse(views[1]!.nextRenewal!) - Date.now()) / (Date.parse(views[1]!.notAfter!) - Date.now())
  t.ok(renewAt >= 0.4 && renewAt <= 0.6, `renewal at ${renewAt.toFixed(3)} of the lifetime (50% ± 10%)`)
  t.ok(Math.abs(life - 24 * 3_600_000 - 60_000) < 2000, '24 h default lifetime (+1 min backdate)')
  t.ok(m.contextForServerName('payments.shop.serviceaccount.identity.cluster.local'))
  t.equal(m.contextForServerName('nobody.shop.serviceaccount.identity.cluster.local'), undefined)
  t.ok(await m.ensure(A))
  await t.rejects(m.ensure(id('shop', 'ghost')), { code: 'HOSTMESH_ERR_CERT_UNAVAILABLE' })
  const everything = JSON.stringify({ views: m.views(), source: m.source(), logs: logs() })
  t.notMatch(everything, /PRIVATE KEY|BEGIN CERTIFICATE/, 'no key or certificate body in views or logs')
  t.match(m.source(), { mode: 'ca', bundle: { roots: [{ subject: 'CN=hostmesh root CA, O=cluster.local' }] }, nodeCa: { subject: 'CN=hostmesh node node-a, O=cluster.local' }, lastError: null })

  await m.sync([A])
  t.same(m.views().map((v) => v.identity), [A], 'sync drops identities no longer local')
  t.equal(m.contextForServerName('checkout.shop.serviceaccount.identity.cluster.local'), undefined)
  await t.rejects(m.sync(['spiffe://other.td/ns/a/sa/b']), { code: 'HOSTMESH_ERR_CERT_INVALID' })
})

t.test('CA mode renews at about half-life; the old context keeps working', async (t) => {
  const p = pki(t)
  const nodeA = await p.node(await p.root('root'), 'node-a')
  // A 3 s lifetime: renewal 1.2-1.8 s after issue.
  const { m } = manager(t, { certDir: certDirFor(p, nodeA), watch: false, leafTtlMs: 3000 })
  await m.start([A])
  const first = m.views()[0]!.serial
  const due = Date.parse(m.views()[0]!.nextRenewal!)
  const oldCtx = m.contextFor(A)
  const [, v] = await next<[string, { serial: string }]>(m, 'published', (i) => i === A)
  t.not(v.serial, first, 'a new serial')
  t.ok(Math.abs(Date.now() - due) < 250, `renewed when /certs said it would (${Date.now() - due} ms off)`)
  t.not(m.contextFor(A), oldCtx, 'new handshakes get the new context')
})

t.test('a missing node CA leaves identities Unavailable with the reason; they recover when files appear', async (t) => {
  const p = pki(t)
  const nodeA = await p.node(await p.root('root'), 'node-a')
  const certDir = certDirFor(p, nodeA)
  renameSync(join(certDir, 'ca-key.pem'), join(certDir, 'ca-key.pem.off'))
  const { m, logs } = manager(t, { certDir, watch: true })
  await m.start([A])
  t.notOk(m.ready)
  t.match(m.views()[0], { identity: A, state: 'Unavailable', lastError: /ca-key\.pem: cannot read: ENOENT/, nextRenewal: String })
  t.match(m.source(), { lastError: /ca-key\.pem/ })
  t.ok(logs().some((l) => l.level === 50 && /certificate files rejected/.test(String(l.msg))), 'logged as an error')
  await t.rejects(m.ensure(A), { code: 'HOSTMESH_ERR_CERT_UNAVAILABLE' })
  const published = next(m, 'published')
  renameSync(join(certDir, 'ca-key.pem.off'), join(certDir, 'ca-key.pem'))
  await published
  t.equal(m.views()[0]!.state, 'Available', 'recovered by the watcher')
})

t.test('a node CA of another node or outside the bundle is refused', async (t) => {
  const p = pki(t)
  const root = await p.root('root')
  const nodeB = await p.node(root, 'node-b')
  const { m } = manager(t, { certDir: certDirFor(p, nodeB), watch: false })
  await m.start([A])
  t.match(m.views()[0], { state: 'Unavailable', lastError: /is the CA of spiffe:\/\/cluster\.local\/hostmesh\/node\/node-b, but this node is spiffe:\/\/cluster\.local\/hostmesh\/node\/node-a/ })
  const foreign = await p.node(await p.root('other'), 'node-a')
  const { m: m2 } = manager(t, { certDir: certDirFor(p, foreign, readFileSync(join(root, 'bundle.pem'), 'utf8')), watch: false })
  await m2.start([A])
  t.match(m2.views()[0], { state: 'Unavailable', lastError: /ca-cert\.pem: is not signed by any root/ })
})

t.test('a bad bundle is refused and the last good one stays; a good new one re-issues', async (t) => {
  const p = pki(t)
  const root = await p.root('root')
  const certDir = certDirFor(p, await p.node(root, 'node-a'))
  const { m } = manager(t, { certDir, watch: true })
  await m.start([A])
  const serial = m.views()[0]!.serial
  const failed = next<[string, Error | undefined]>(m, 'reloaded', (_r, e) => e !== undefined)
  writeFileSync(join(certDir, 'bundle.pem'), '-----BEGIN CERTIFICATE-----\nnot base64 at all\n-----END CERTIFICATE-----\n')
  const [, err] = await failed
  t.match(err?.message, /bundle\.pem/)
  t.match(m.views()[0], { state: 'Available', serial }, 'identity untouched')
  t.equal(m.bundle!.roots.length, 1)
  // A well-formed bundle that does not hold the node CA's root is refused as a whole too.
  const stranger = await p.root('stranger')
  const before = m.bundle!.hash
  const refused = next<[string, Error | undefined]>(m, 'reloaded', (_r, e) => e !== undefined)
  writeFileSync(join(certDir, 'bundle.pem'), readFileSync(join(stranger, 'root-cert.pem')))
  t.match((await refused)[1]?.message, /ca-cert\.pem: is not signed by any root of/)
  t.equal(m.bundle!.hash, before, 'the bundle in force is still the old one')
  t.match(m.views()[0], { state: 'Available', serial })
  // Root rotation, step 1: both roots in the bundle. The leaf is re-issued against it.
  const second = await p.root('second')
  const published = next(m, 'published')
  writeFileSync(join(certDir, 'bundle.pem'), readFileSync(join(root, 'root-cert.pem'), 'utf8') + readFileSync(join(second, 'root-cert.pem'), 'utf8'))
  await published
  t.equal(m.bundle!.roots.length, 2)
  t.not(m.views()[0]!.serial, serial)
})

t.test('file mode: files are validated, hot-swapped, and a bad swap keeps the last good certificate', async (t) => {
  const p = pki(t)
  const root = await p.root('root')
  const nodeA = await p.node(root, 'node-a')
  const certDir = join(p.dir, 'file-mode')
  mkdirSync(certDir)
  copyFileSync(join(root, 'bundle.pem'), join(certDir, 'bundle.pem'))
  const put = async (identity: string, leafOf = identity): Promise<LeafFiles> => {
    const leaf = await p.leaf(nodeA, leafOf)
    const dir = fileModeDir(certDir, identity)
    mkdirSync(dir, { recursive: true })
    // Each file replaced atomically, as spiffe-helper and cert-manager's csi driver do.
    for (const f of ['cert', 'key', 'chain'] as const) {
      copyFileSync(leaf[f], join(dir, `.${f}.tmp`))
      renameSync(join(dir, `.${f}.tmp`), join(dir, `${f}.pem`))
    }
    return leaf
  }
  await put(A)
  const { m } = manager(t, { mode: 'file', certDir, watch: true })
  await m.start([A, B])
  t.match(m.views(), [{ identity: B, state: 'Unavailable', lastError: /workloads\/shop\/checkout\/cert\.pem: cannot read: ENOENT/ }, { identity: A, state: 'Available' }])
  t.notOk(m.views()[1]!.nextRenewal, 'file mode: renewal is the external issuer\'s job')
  const before = m.views()[1]!.serial

  let published = next<[string]>(m, 'published', (i) => i === A)
  const afterLeaf = await put(A)
  await published
  t.not(m.views()[1]!.serial, before, 'swapped without a restart')

  const after = m.views()[1]!.serial
  const failed = next<[string, Error | undefined]>(m, 'reloaded')
  await put(A, id('shop', 'someone-else'))
  await failed
  await new Promise((r) => setTimeout(r, 300))
  t.match(m.views()[1], { state: 'Available', serial: after, lastError: /the peer is spiffe:\/\/cluster\.local\/ns\/shop\/sa\/someone-else, expected spiffe:\/\/cluster\.local\/ns\/shop\/sa\/payments/ }, 'a certificate for the wrong identity is refused')

  const dirA = fileModeDir(certDir, A)
  const good = await p.leaf(nodeA, A)
  const other = await p.leaf(nodeA, A)
  for (const f of ['cert', 'chain'] as const) copyFileSync(good[f], join(dirA, `${f}.pem`))
  writeFileSync(join(dirA, 'key.pem'), readFileSync(other.key))
  await m.reload('SIGHUP')
  t.match(m.views()[1], { serial: after, lastError: /private key does not belong to the certificate/ })
  for (const f of ['cert', 'key', 'chain'] as const) copyFileSync(afterLeaf[f], join(dirA, `${f}.pem`))
  await m.reload('SIGHUP')
  t.match(m.views()[1], { state: 'Available', serial: after })
  t.notOk(m.views()[1]!.lastError, 'the good files back: the stale error is cleared')

  published = next<[string]>(m, 'published', (i) => i === B)
  await put(B)
  await published
  t.equal(m.views()[0]!.state, 'Available', 'an identity whose files appear becomes Available')
  rmSync(dirA, { recursive: true })
  await m.reload('SIGHUP')
  t.match(m.views()[1], { state: 'Available', serial: after }, 'files removed: the last good certificate stays until it expires')
})

t.test('an identity removed while its first certificate is pending: ensure() answers, nothing is published', async (t) => {
  const p = pki(t)
  const nodeA = await p.node(await p.root('root'), 'node-a')
  const { m, logs } = manager(t, { certDir: certDirFor(p, nodeA), watch: false })
  await m.start([A])
  const C = id('shop', 'ledger')
  const published: string[] = []
  m.on('published', (i) => published.push(i))
  const adding = m.sync([A, C])
  const waiting = m.ensure(C)
  await m.sync([A])
  await adding
  await t.rejects(waiting, { code: 'HOSTMESH_ERR_CERT_UNAVAILABLE' }, 'ensure() does not hang')
  await new Promise((r) => setTimeout(r, 100))
  t.same(published, [], 'no certificate published for the removed identity')
  t.notOk(logs().some((l) => l.identity === C && l.msg === 'certificate published'))
})

t.test('an expired certificate makes its identity Unavailable, and stays visible', async (t) => {
  const p = pki(t)
  const root = await p.root('root')
  const nodeA = await p.node(root, 'node-a')
  const certDir = join(p.dir, 'expiring')
  const dir = fileModeDir(certDir, A)
  mkdirSync(dir, { recursive: true })
  copyFileSync(join(root, 'bundle.pem'), join(certDir, 'bundle.pem'))
  const leaf = await p.leaf(nodeA, A, { ttlMs: 1500 })
  for (const f of ['cert', 'key', 'chain'] as const) copyFileSync(leaf[f], join(dir, `${f}.pem`))
  const { m } = manager(t, { mode: 'file', certDir, watch: false })
  await m.start([A])
  const serial = m.views()[0]!.serial
  t.equal(m.views()[0]!.state, 'Available')
  await next(m, 'unavailable', (i) => i === A, 5000)
  t.match(m.views()[0], { state: 'Unavailable', serial, notAfter: String }, 'serial and notAfter stay for /certs and the expiry gauge')
  t.equal(m.contextFor(A), undefined, 'an expired certificate is not served')
  t.ok(Date.parse(m.views()[0]!.notAfter!) <= Date.now())
})

t.test('a cert dir that does not exist yet is reported once, not on every watcher event', async (t) => {
  const dir = join(t.testdirName, 'not-yet')
  const { m, logs } = manager(t, { certDir: dir })
  await m.start([A])
  await new Promise((r) => setTimeout(r, 600))
  const slotFailures = logs().filter((l) => /no valid certificate/.test(String(l.msg))).length
  t.ok(slotFailures <= 2, `the identity's failure is not logged again on every watcher event (${slotFailures})`)
  const rejected = logs().filter((l) => l.msg === 'certificate files rejected; the last good ones stay in force')
  t.equal(rejected.filter((l) => l.level === 50).length, 1, 'one error (an identity needs them)')
  t.ok(rejected.every((l) => l.level === 50 || l.level === 20), 'repeats are debug lines')
  await m.reload('SIGHUP')
  t.equal(logs().filter((l) => l.msg === 'certificate files rejected; the last good ones stay in force' && l.level === 50).length, 2, 'an operator\'s reload reports it again')
})
