// A worker thread's certificates: contexts built from posted leaves, looked up by identity and
// by TLS server name; a dial waits for a leaf that is on its way and fails with
// HOSTMESH_ERR_CERT_UNAVAILABLE when none comes; an unchanged leaf keeps its context.
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import pino from 'pino'
import { Registry } from 'prom-client'
import t from 'tap'
import { CertManager } from '../../../certs/manager.ts'
import { serverName } from '../../../certs/spiffe.ts'
import { PostedCertificates } from '../../../daemon/workers/posted-certs.ts'
import { id, nodeCertDir, TD } from '../../helpers/pki.ts'

const log = pino({ level: 'silent' })

t.test('posted leaves serve by identity and by server name; nothing else does', async (t) => {
  const certDir = await nodeCertDir(mkdtempSync(join(tmpdir(), 'hostmesh-posted-')), 'node-a')
  const manager = new CertManager({ mode: 'ca', certDir, trustDomain: TD, node: 'node-a', log, watch: false, resyncMs: 0 })
  t.teardown(() => manager.close())
  await manager.start([id('t', 'a'), id('t', 'b')])
  const post = manager.leaves()
  t.same(post.leaves.map((l) => l.identity).sort(), [id('t', 'a'), id('t', 'b')], 'the primary posts every Available leaf')
  t.match(post.bundlePem, /BEGIN CERTIFICATE/)

  const posted = new PostedCertificates(TD, undefined, log, new Registry())
  posted.update(post)
  const a = await posted.ensure(id('t', 'a'))
  t.equal(posted.contextForServerName(serverName(id('t', 'a'))!), a, 'the same context by server name')
  t.equal(posted.contextForServerName('nobody.example'), undefined)

  // The same leaves again: contexts kept (TLS session caches survive a repost).
  posted.update(manager.leaves())
  t.equal(await posted.ensure(id('t', 'a')), a, 'an unchanged leaf keeps its context')

  // A leaf dropped from the post is gone.
  posted.update({ leaves: post.leaves.filter((l) => l.identity !== id('t', 'b')), bundlePem: post.bundlePem })
  t.equal(posted.contextForServerName(serverName(id('t', 'b'))!), undefined, 'a dropped leaf no longer serves')
})

t.test('a dial waits for a leaf on its way, and fails with a code when none comes', async (t) => {
  const certDir = await nodeCertDir(mkdtempSync(join(tmpdir(), 'hostmesh-posted-')), 'node-a')
  const manager = new CertManager({ mode: 'ca', certDir, trustDomain: TD, node: 'node-a', log, watch: false, resyncMs: 0 })
  t.teardown(() => manager.close())
  await manager.start([id('t', 'late')])
  const posted = new PostedCertificates(TD, undefined, log, new Registry(), 500)
  posted.update({ leaves: [], bundlePem: manager.leaves().bundlePem })
  const waiting = posted.ensure(id('t', 'late'))
  setTimeout(() => posted.update(manager.leaves()), 50)
  t.ok(await waiting, 'resolved once the leaf was posted')

  const none = posted.ensure(id('t', 'never'))
  await t.rejects(none, { code: 'HOSTMESH_ERR_CERT_UNAVAILABLE' }, 'no leaf within the wait: unavailable')
})
