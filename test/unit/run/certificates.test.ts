// The daemon's certificates end to end in one process: identities follow the policy's local
// workloads, /ready waits for them, /certs and /metrics show them (never a key), a missing
// node CA is picked up when it appears, and SIGHUP re-reads the cert dir.
import { cpSync, mkdtempSync, readFileSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import { Daemon } from '../../../daemon/run/lifecycle.ts'
import { nodeCertDir } from '../../helpers/pki.ts'
import { get, until } from '../../helpers/admin.ts'
import { daemonPorts } from '../../helpers/ports.ts'

const EXAMPLES = new URL('../../../policy/examples/', import.meta.url).pathname
const FRAUD = 'spiffe://cluster.local/ns/shop/sa/fraud'
const PAYMENTS = 'spiffe://cluster.local/ns/shop/sa/payments'

async function setup(): Promise<{ config: string; dir: string; certDir: string; port: number }> {
  const root = mkdtempSync(join(tmpdir(), 'hostmesh-certs-'))
  const dir = join(root, 'policy.d')
  cpSync(EXAMPLES, dir, { recursive: true })
  const ports = await daemonPorts()
  const port = ports.admin
  const certDir = await nodeCertDir(root, 'node-c')
  const config = join(root, 'hostmesh.yaml')
  writeFileSync(config, `node: {name: node-c, addresses: [10.77.0.13]}\n${ports.yaml}policyDir: ${dir}\ncertDir: ${certDir}\ndrainSeconds: 1\ncertificates: {leafTtl: 1h}\n`)
  return { config, dir, certDir, port }
}

function capture(): { dest: Writable; text: () => string } {
  let text = ''
  return { dest: new Writable({ write(c, _e, cb) { text += c.toString(); cb() } }), text: () => text }
}

t.test('/certs and /metrics show each local identity; no key anywhere', async (t) => {
  const { config, dir, port } = await setup()
  const log = capture()
  const daemon = await Daemon.start({ configPath: config, logDest: log.dest })
  t.teardown(() => daemon.stop('test'))
  t.equal((await get(port, '/ready')).status, 200)
  const certs = JSON.parse((await get(port, '/certs')).body)
  t.match(certs, { mode: 'ca', bundle: { roots: [{ subject: 'CN=hostmesh root CA, O=cluster.local' }] }, nodeCa: { subject: 'CN=hostmesh node node-c, O=cluster.local' }, lastError: null })
  t.same(certs.identities.map((i: { identity: string; state: string }) => [i.identity, i.state]), [[FRAUD, 'Available'], [PAYMENTS, 'Available']])
  t.match(certs.identities[0], { serial: /^[0-9a-f]+$/, notBefore: String, notAfter: String, issuer: 'CN=hostmesh node node-c, O=cluster.local', nextRenewal: String })
  const metrics = (await get(port, '/metrics')).body
  const expiry = new RegExp(`^hostmesh_cert_expiry_seconds\\{identity="${FRAUD}"\\} (\\d+)$`, 'm').exec(metrics)
  t.ok(expiry && Number(expiry[1]) > 3500 && Number(expiry[1]) <= 3600, `expiry gauge about 1 h: ${expiry?.[1]}`)
  t.match(metrics, new RegExp(`^hostmesh_cert_state\\{identity="${PAYMENTS}",state="Available"\\} 1$`, 'm'))
  t.match(metrics, /^hostmesh_tls_handshake_failures_total\{reason="wrong_node"\} 0$/m)

  // A Workload for a new identity on this node: a certificate appears for it.
  writeFileSync(join(dir, '50-more.yaml'), 'apiVersion: hostmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: audit, namespace: shop}\nspec: {node: node-c, serviceAccount: audit, match: {uid: 2009}}\n')
  await until(async () => JSON.parse((await get(port, '/certs')).body).identities.some((i: { identity: string; state: string }) => i.identity.endsWith('/sa/audit') && i.state === 'Available'), 'the new identity')
  t.pass('a policy change adds its identity')
  const everything = (await get(port, '/certs')).body + (await get(port, '/config_dump')).body + log.text()
  t.notMatch(everything, /PRIVATE KEY|BEGIN CERTIFICATE/, 'no key or certificate body in /certs, /config_dump or logs')
})

t.test('without a node CA the daemon is not ready; it becomes ready when the files arrive', async (t) => {
  const { config, certDir, port } = await setup()
  renameSync(join(certDir, 'ca-key.pem'), join(certDir, '..', 'ca-key.pem.later'))
  const daemon = await Daemon.start({ configPath: config, logDest: capture().dest })
  t.teardown(() => daemon.stop('test'))
  const ready = await get(port, '/ready')
  t.equal(ready.status, 503)
  t.same(JSON.parse(ready.body).waitingFor, ['certificates'])
  const certs = JSON.parse((await get(port, '/certs')).body)
  t.match(certs.identities[0], { state: 'Unavailable', lastError: /ca-key\.pem: cannot read: ENOENT/ })
  t.match((await get(port, '/metrics')).body, new RegExp(`^hostmesh_cert_state\\{identity="${FRAUD}",state="Unavailable"\\} 1$`, 'm'))
  renameSync(join(certDir, '..', 'ca-key.pem.later'), join(certDir, 'ca-key.pem'))
  await until(async () => (await get(port, '/ready')).status === 200, 'readiness')
  t.pass('ready once the node CA is in place')
})

t.test('SIGHUP (Daemon.reload) re-reads the cert dir too', async (t) => {
  const { config, certDir, port } = await setup()
  const daemon = await Daemon.start({ configPath: config, logDest: capture().dest })
  t.teardown(() => daemon.stop('test'))
  const before = JSON.parse((await get(port, '/certs')).body).bundle.roots[0].sha256
  // A second root, as the first step of a root rotation, written without an event the
  // watcher would see first: the reload must find it.
  const other = await nodeCertDir(mkdtempSync(join(tmpdir(), 'hostmesh-certs-other-')), 'node-c')
  writeFileSync(join(certDir, 'bundle.pem'), readFileSync(join(certDir, 'bundle.pem'), 'utf8') + readFileSync(join(other, 'bundle.pem'), 'utf8'))
  await daemon.reload('SIGHUP')
  const after = JSON.parse((await get(port, '/certs')).body)
  t.equal(after.bundle.roots.length, 2)
  t.equal(after.bundle.roots[0].sha256, before)
})
