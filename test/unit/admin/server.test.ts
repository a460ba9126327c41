import t, { type Test } from 'tap'
import { pino } from 'pino'
import { registerCoreRoutes } from '../../../daemon/admin/core-routes.ts'
import { AdminBindError } from '../../../daemon/admin/errors.ts'
import { AdminServer } from '../../../daemon/admin/server.ts'
import { createMetrics } from '../../../daemon/metrics/registry.ts'
import { Readiness } from '../../../daemon/run/readiness.ts'
import { freePort } from '../../helpers/ports.ts'

const log = pino({ level: 'silent' })

async function started(t: Test, readiness = new Readiness(['listeners'])): Promise<{ base: string; admin: AdminServer; readiness: Readiness }> {
  const admin = new AdminServer({ address: '127.0.0.1', port: await freePort(), allowRemote: false, log })
  registerCoreRoutes(admin, readiness, createMetrics())
  const addr = await admin.listen()
  t.teardown(() => admin.close())
  return { base: `http://127.0.0.1:${addr.port}`, admin, readiness }
}

t.test('/healthz answers while the daemon lives', async (t) => {
  const { base } = await started(t)
  const res = await fetch(`${base}/healthz`)
  t.equal(res.status, 200)
  t.same(await res.json(), { status: 'ok' })
})

t.test('/ready is 503 until every condition is met, and again while draining', async (t) => {
  const { base, readiness } = await started(t, new Readiness(['listeners', 'policy']))
  let res = await fetch(`${base}/ready`)
  t.equal(res.status, 503)
  t.same(await res.json(), { ready: false, draining: false, waitingFor: ['listeners', 'policy'] })
  readiness.markReady('listeners')
  res = await fetch(`${base}/ready`)
  t.equal(res.status, 503)
  t.same((await res.json() as { waitingFor: string[] }).waitingFor, ['policy'])
  readiness.markReady('policy')
  res = await fetch(`${base}/ready`)
  t.equal(res.status, 200)
  t.same(await res.json(), { ready: true, draining: false, waitingFor: [] })
  readiness.startDrain()
  res = await fetch(`${base}/ready`)
  t.equal(res.status, 503)
  t.same(await res.json(), { ready: false, draining: true, waitingFor: [] })
})

t.test('/metrics serves Prometheus text with default metrics and event-loop lag', async (t) => {
  const { base } = await started(t)
  const res = await fetch(`${base}/metrics`)
  t.equal(res.status, 200)
  t.match(res.headers.get('content-type'), /^text\/plain; version=0\.0\.4/)
  const text = await res.text()
  t.match(text, /^# TYPE nodejs_eventloop_lag_seconds gauge$/m)
  t.match(text, /^nodejs_eventloop_lag_p99_seconds \d/m)
  t.match(text, /^process_resident_memory_bytes \d+/m)
})

t.test('unknown paths are 404 with the list of endpoints; wrong methods are 405', async (t) => {
  const { base, admin } = await started(t)
  admin.route('POST', '/logging', () => ({ status: 200, body: {} }))
  let res = await fetch(`${base}/nope`)
  t.equal(res.status, 404)
  t.same(await res.json(), { error: 'no admin endpoint /nope', endpoints: ['/healthz', '/logging', '/metrics', '/ready'] })
  res = await fetch(`${base}/logging`)
  t.equal(res.status, 405)
  t.equal(res.headers.get('allow'), 'POST')
  await res.body?.cancel()
  t.throws(() => admin.route('GET', '/healthz', () => ({ status: 200, body: '' })), /registered twice/)
})

t.test('a change (POST) from a web page is refused: no admin change carries an Origin header', async (t) => {
  const { base, admin } = await started(t)
  let called = 0
  admin.route('POST', '/logging', () => ({ status: 200, body: { called: ++called } }))
  const cross = await fetch(`${base}/logging?level=silent`, { method: 'POST', headers: { origin: 'http://evil.example' } })
  t.equal(cross.status, 403)
  t.match(await cross.json(), { header: 'origin', error: /Origin header \(http:\/\/evil\.example\) refused/ })
  t.equal(called, 0, 'the handler never ran')
  const local = await fetch(`${base}/logging?level=info`, { method: 'POST' })
  t.same(await local.json(), { called: 1 }, 'curl-like requests (no Origin) are served')
  const read = await fetch(`${base}/healthz`, { headers: { origin: 'http://evil.example' } })
  t.equal(read.status, 200, 'reads are not changes')
  await read.body?.cancel()
})

t.test('a failing handler answers 500 without details and the server keeps serving', async (t) => {
  const { base, admin } = await started(t)
  admin.route('GET', '/boom', () => { throw new Error('secret detail') })
  const res = await fetch(`${base}/boom`)
  t.equal(res.status, 500)
  t.notMatch(await res.text(), /secret detail/)
  t.equal((await fetch(`${base}/healthz`)).status, 200)
})

t.test('a request target that is not a path gets 400, and the server keeps serving', async (t) => {
  const { base } = await started(t)
  const { connect } = await import('node:net')
  const port = Number(new URL(base).port)
  for (const target of ['//', '///x', '//[', '*', 'http://evil/ready']) {
    const answer = await new Promise<string>((resolve, reject) => {
      let data = ''
      const sock = connect(port, '127.0.0.1', () => sock.write(`GET ${target} HTTP/1.1\r\nhost: x\r\nconnection: close\r\n\r\n`))
      sock.on('data', (d: Buffer) => { data += d.toString() })
      sock.on('end', () => resolve(data))
      sock.on('error', reject)
    })
    t.match(answer, /^HTTP\/1\.1 400 /, `${target} → 400`)
  }
  t.equal((await fetch(`${base}/healthz`)).status, 200, 'still alive')
})

t.test('a non-loopback bind is refused unless allowRemote is set', async (t) => {
  const port = await freePort()
  const refused = new AdminServer({ address: '0.0.0.0', port, allowRemote: false, log })
  const err = await t.rejects(refused.listen(), AdminBindError)
  t.match(err, { code: 'HOSTMESH_ERR_ADMIN_BIND', message: /refusing to bind the admin port to 0\.0\.0\.0/ })

  const allowed = new AdminServer({ address: '0.0.0.0', port, allowRemote: true, log })
  const addr = await allowed.listen()
  t.equal(addr.address, '0.0.0.0')
  await allowed.close()
})

t.test('a port in use is a clear bind error with the cause kept', async (t) => {
  const { admin } = await started(t)
  void admin
  const taken = Number(new URL((await started(t)).base).port)
  const second = new AdminServer({ address: '127.0.0.1', port: taken, allowRemote: false, log })
  const err = await t.rejects(second.listen(), AdminBindError)
  t.match(err, { message: new RegExp(`cannot bind the admin port to 127\\.0\\.0\\.1:${taken}: EADDRINUSE`), cause: { code: 'EADDRINUSE' } })
})

t.test('close() lets an in-flight request finish; destroy() does not wait', async (t) => {
  const { base, admin } = await started(t)
  let release!: () => void
  admin.route('GET', '/slow', () => new Promise((resolve) => { release = () => resolve({ status: 200, body: { done: true } }) }))
  const pending = fetch(`${base}/slow`)
  await new Promise((r) => setTimeout(r, 50))
  const closed = admin.close()
  release()
  const res = await pending
  t.same(await res.json(), { done: true })
  await closed
  await t.rejects(fetch(`${base}/healthz`), 'no longer accepting')
})
