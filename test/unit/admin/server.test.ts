import { spawn } from 'node:child_process'
import { readableBy } from '../../../scripts/netns/readable.ts'
import { chmodSync, existsSync, mkdtempSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { connect } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { pino } from 'pino'
import { registerCoreRoutes } from '../../../daemon/admin/core-routes.ts'
import { AdminBindError } from '../../../daemon/admin/errors.ts'
import { AdminServer, isLoopbackHost } from '../../../daemon/admin/server.ts'
import { createMetrics } from '../../../daemon/metrics/registry.ts'
import { Readiness } from '../../../daemon/run/readiness.ts'
import { adminRequest } from '../../helpers/admin.ts'
import { freePort } from '../../helpers/ports.ts'

const log = pino({ level: 'silent' })

/** A fresh admin socket path in a directory of its own, removed after the test. */
function socketPath(t: Test): string {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-admin-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  return join(dir, 'admin.sock')
}

async function started(t: Test, readiness = new Readiness(['listeners']), opts: { allowRemote?: boolean; socket?: string } = {}): Promise<{ base: string; port: number; socket: string; admin: AdminServer; readiness: Readiness }> {
  const socket = opts.socket ?? socketPath(t)
  const admin = new AdminServer({ address: '127.0.0.1', port: await freePort(), allowRemote: opts.allowRemote ?? false, socket, log })
  registerCoreRoutes(admin, readiness, createMetrics())
  const addr = await admin.listen()
  t.teardown(() => admin.close())
  return { base: `http://127.0.0.1:${addr.port}`, port: addr.port, socket, admin, readiness }
}

/** Writes `request` (raw bytes) to 127.0.0.1:port and resolves with everything answered. */
function raw(port: number, request: string): Promise<string> {
  return new Promise((resolve, reject) => {
    let data = ''
    const sock = connect(port, '127.0.0.1', () => sock.write(request))
    sock.on('data', (d: Buffer) => { data += d.toString() })
    sock.on('end', () => resolve(data))
    sock.on('error', reject)
  })
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
  const { base, socket, admin } = await started(t)
  let called = 0
  admin.route('POST', '/logging', () => ({ status: 200, body: { called: ++called } }))
  const cross = await fetch(`${base}/logging?level=silent`, { method: 'POST', headers: { origin: 'http://evil.example' } })
  t.equal(cross.status, 403)
  t.match(await cross.json(), { header: 'origin', error: /Origin header \(http:\/\/evil\.example\) refused/ })
  const crossSocket = await adminRequest(socket, '/logging?level=silent', { method: 'POST', headers: { origin: 'http://evil.example' } })
  t.match([crossSocket.status, crossSocket.body], [403, { header: 'origin' }], 'on the admin socket too')
  t.equal(called, 0, 'the handler never ran')
  const local = await adminRequest(socket, '/logging?level=info', { method: 'POST' })
  t.same(local.body, { called: 1 }, 'curl-like requests (no Origin) are served on the socket')
  const read = await fetch(`${base}/healthz`, { headers: { origin: 'http://evil.example' } })
  t.equal(read.status, 200, 'reads are not changes')
  await read.body?.cancel()
})

t.test('the Host header must name loopback on the TCP port (DNS rebinding), for every endpoint and method', async (t) => {
  const { port, socket, admin } = await started(t)
  admin.route('GET', '/config_dump', () => ({ status: 200, body: { secret: 'policy' } }))
  admin.route('POST', '/logging', () => ({ status: 200, body: { changed: true } }))
  for (const host of ['evil.example', 'evil.example:15000', 'localhost.evil.example', '127.0.0.1.nip.io', 'evil.example#.localhost', '[::2]:15000', '10.0.0.1', '127.0.0.1@evil.example', '127.1', 'localhost:', 'localhost.']) {
    const res = await adminRequest<{ error: string; header: string; value: string }>(port, '/config_dump', { headers: { host } })
    t.equal(res.status, 403, `Host ${JSON.stringify(host)} → 403`)
    t.same([res.body.header, res.body.value], ['host', host])
    t.match(res.body.error, `Host header ${JSON.stringify(host)} refused: the admin port answers only requests addressed to localhost, 127.0.0.1 or [::1]`)
    t.notMatch(JSON.stringify(res.body), /policy/, 'and nothing of the endpoint')
  }
  const post = await adminRequest<{ header: string }>(port, '/logging?level=debug', { method: 'POST', headers: { host: 'evil.example' } })
  t.same([post.status, post.body.header], [403, 'host'], 'a POST too')
  const missing = await adminRequest<{ header: string }>(port, '/nope', { headers: { host: 'evil.example' } })
  t.same([missing.status, missing.body.header], [403, 'host'], 'and an unknown path: nothing is told to a rebound page')

  for (const host of ['localhost:15000', 'localhost', 'LocalHost', `127.0.0.1:${port}`, '127.9.8.7', `[::1]:${port}`, '[::1]', '[0:0:0:0:0:0:0:1]', 'foo.localhost', 'a.b-c.localhost:80']) {
    const res = await adminRequest(port, '/config_dump', { headers: { host } })
    t.same([res.status, res.body], [200, { secret: 'policy' }], `Host ${host} → 200`)
  }
  t.match(await raw(port, 'GET /config_dump HTTP/1.1\r\nhost: \r\nconnection: close\r\n\r\n'), /^HTTP\/1\.1 403 [^]*"header": "host"/, 'an empty Host header → 403')
  t.match(await raw(port, 'GET /config_dump HTTP/1.0\r\n\r\n'), /^HTTP\/1\.1 200 [^]*"secret": "policy"/, 'no Host header at all (HTTP/1.0) → 200')
  const overSocket = await adminRequest(socket, '/config_dump', { headers: { host: 'evil.example' } })
  t.equal(overSocket.status, 200, 'the unix socket has no Host rule: no browser reaches it')
})

t.test('a huge Host header is echoed clipped', async (t) => {
  const { port } = await started(t)
  const host = `${'a'.repeat(5000)}.example`
  const res = await adminRequest<{ error: string; value: string }>(port, '/healthz', { headers: { host } })
  t.equal(res.status, 403)
  t.equal(res.body.value, `${'a'.repeat(100)}…(+${host.length - 100} chars)`)
  t.ok(Number(res.headers['content-length']) < 600, `a short answer (${res.headers['content-length']} bytes)`)
})

t.test('with allowRemote any Host is served', async (t) => {
  const { port } = await started(t, undefined, { allowRemote: true })
  for (const host of ['evil.example', 'mesh-node-7.internal:15000', '10.0.0.1']) {
    const res = await adminRequest(port, '/healthz', { headers: { host } })
    t.same([res.status, res.body], [200, { status: 'ok' }], `Host ${host} → 200`)
  }
})

t.test('isLoopbackHost', async (t) => {
  t.same(['localhost', 'x.localhost:1', '127.0.0.1', '127.255.255.255:65535', '[::1]:15000', '[0::1]'].filter((h) => !isLoopbackHost(h)), [])
  t.same(['localhostx', 'x.localhost.', '128.0.0.1', '127.0.0.256', '[::1', '::1', '[::ffff:127.0.0.1]', 'localhost:123456', ' localhost', 'local host'].filter((h) => isLoopbackHost(h)), [])
})

t.test('a mutating route is served on the admin socket only; on the TCP port it gets 403 with the command', async (t) => {
  const { port, socket, admin } = await started(t)
  const calls: string[] = []
  admin.route('POST', '/logging', (_req, url) => { calls.push(`logging ${url.search}`); return { status: 200, body: { ok: true } } })
  admin.route('GET', '/danger', () => { calls.push('danger'); return { status: 200, body: {} } }, { mutating: true })
  admin.route('POST', '/echo', () => { calls.push('echo'); return { status: 200, body: {} } }, { mutating: false })

  const refused = await adminRequest<{ error: string; socket: string; command: string }>(port, '/logging?level=silent', { method: 'POST' })
  t.equal(refused.status, 403)
  t.same(refused.body, {
    error: `POST /logging changes the daemon's state, which the admin TCP port does not take (any local user can reach it); send it to the admin socket ${socket}, which only the daemon's user and root can open: curl --unix-socket ${socket} -X POST 'http://localhost/logging?level=silent'`,
    socket,
    command: `curl --unix-socket ${socket} -X POST 'http://localhost/logging?level=silent'`,
  })
  t.equal((await adminRequest(port, '/danger')).status, 403, 'a GET route registered as mutating')
  t.same(calls, [], 'no handler ran')
  t.equal((await adminRequest(port, '/echo', { method: 'POST' })).status, 200, 'a POST route registered as not mutating is served on TCP')

  const ok = await adminRequest(socket, '/logging?level=silent', { method: 'POST' })
  t.same([ok.status, ok.body], [200, { ok: true }])
  t.equal((await adminRequest(socket, '/danger')).status, 200)
  t.same(calls, ['echo', 'logging ?level=silent', 'danger'])
  t.equal((await adminRequest(socket, '/healthz')).status, 200, 'GET routes are served on the socket too')
  t.equal((await adminRequest(socket, '/healthz', { method: 'POST' })).status, 405, 'and methods are checked there as well')
})

t.test('the admin socket is 0600, only its owner can connect, and it is removed on close', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-admin-mode-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  chmodSync(dir, 0o755) // so that the socket's own mode is what stops another user
  const socket = join(dir, 'admin.sock')
  const admin = new AdminServer({ address: '127.0.0.1', port: await freePort(), allowRemote: false, socket, log })
  registerCoreRoutes(admin, new Readiness([]), createMetrics())
  await admin.listen()
  const st = statSync(socket)
  t.ok(st.isSocket())
  t.equal((st.mode & 0o777).toString(8), '600')
  t.equal(st.uid, process.getuid!())
  if (process.getuid!() === 0) {
    // nobody's node: a copy it can read (the checkout may be root's only), without tap's hooks
    // (`env -u`: tap puts NODE_OPTIONS back into whatever env a child is given).
    const other = spawn('env', ['-u', 'NODE_OPTIONS', readableBy(process.execPath), '-e', `require('net').connect(${JSON.stringify(socket)}).on('connect', () => { console.log('connected'); process.exit(0) }).on('error', (e) => { console.log(e.code); process.exit(0) })`], { uid: 65534, gid: 65534, cwd: '/' })
    let out = ''
    other.stdout.on('data', (d: Buffer) => { out += d.toString() })
    await new Promise((r) => other.on('exit', r))
    t.equal(out.trim(), 'EACCES', 'another uid (nobody) cannot connect')
  }
  const view = await admin.view()
  t.same(view.addresses.at(-1), socket, '/stats lists the socket')
  await admin.close()
  t.notOk(existsSync(socket), 'close() removed the socket file')

  const again = new AdminServer({ address: '127.0.0.1', port: await freePort(), allowRemote: false, socket, log })
  await again.listen()
  t.ok(existsSync(socket))
  again.destroy()
  await new Promise((r) => setTimeout(r, 20))
  t.notOk(existsSync(socket), 'destroy() removed it too')
})

t.test('a second server on the same socket path fails while the first answers there; a stale socket is replaced', async (t) => {
  const { socket } = await started(t)
  const port = await freePort()
  const second = new AdminServer({ address: '127.0.0.1', port, allowRemote: false, socket, log })
  const err = await t.rejects(second.listen(), AdminBindError)
  t.match(err, { code: 'HOSTMESH_ERR_ADMIN_BIND', message: `cannot bind the admin socket ${socket}: EADDRINUSE (a running process answers on it: another hostmesh with the same admin.socket?)` })
  t.same((await adminRequest(socket, '/healthz')).body, { status: 'ok' }, 'the first still answers on its socket: nothing was stolen')
  const free = await raw(port, 'GET /healthz HTTP/1.0\r\n\r\n').then(() => 'answered', (e: NodeJS.ErrnoException) => e.code)
  t.equal(free, 'ECONNREFUSED', 'the second released its TCP port')

  // A process that was killed leaves its socket file behind: nothing answers there.
  const stale = socketPath(t)
  const holder = spawn(process.execPath, ['-e', `require('net').createServer().listen(${JSON.stringify(stale)}, () => console.log('up'))`])
  await new Promise((r) => holder.stdout.once('data', r))
  holder.kill('SIGKILL')
  await new Promise((r) => holder.on('exit', r))
  t.ok(statSync(stale).isSocket(), 'the killed process left its socket file')
  const logs: unknown[] = []
  const next = new AdminServer({ address: '127.0.0.1', port: await freePort(), allowRemote: false, socket: stale, log: pino({ level: 'info' }, { write: (l: string) => logs.push(JSON.parse(l)) }) })
  registerCoreRoutes(next, new Readiness([]), createMetrics())
  await next.listen()
  t.teardown(() => next.close())
  t.same((await adminRequest(stale, '/healthz')).body, { status: 'ok' }, 'the stale socket was replaced')
  t.match(logs, [{ msg: 'removed a stale admin socket (nothing answered on it)', socket: stale }])
})

t.test('a socket path that is not a socket, or cannot be made, is an AdminBindError naming the path and errno', async (t) => {
  const file = socketPath(t)
  writeFileSync(file, 'operator data')
  const port = await freePort()
  const onFile = new AdminServer({ address: '127.0.0.1', port, allowRemote: false, socket: file, log })
  const err = await t.rejects(onFile.listen(), AdminBindError)
  t.match(err, { message: `cannot bind the admin socket ${file}: EEXIST (it exists and is not a socket; hostmesh does not remove it)` })
  t.ok(existsSync(file), 'the file is left alone')
  const free = await raw(port, 'GET /healthz HTTP/1.0\r\n\r\n').then(() => 'answered', (e: NodeJS.ErrnoException) => e.code)
  t.equal(free, 'ECONNREFUSED', 'the TCP port was released')

  const deep = join(socketPath(t), '..', 'a', 'b', 'admin.sock')
  const noDir = new AdminServer({ address: '127.0.0.1', port: await freePort(), allowRemote: false, socket: deep, log })
  const err2 = await t.rejects(noDir.listen(), AdminBindError)
  t.match(err2, { message: new RegExp(`^cannot create the admin socket's directory ${deep.replace(/\/admin\.sock$/, '')}: ENOENT; under systemd RuntimeDirectory=hostmesh makes /run/hostmesh, elsewhere set admin\.socket to a path this user can write$`), cause: { code: 'ENOENT' } })

  const oneLevel = join(socketPath(t), '..', 'run', 'admin.sock')
  const made = new AdminServer({ address: '127.0.0.1', port: await freePort(), allowRemote: false, socket: oneLevel, log })
  await made.listen()
  t.teardown(() => made.close())
  t.equal((statSync(join(oneLevel, '..')).mode & 0o777).toString(8), '750', 'one missing level is made, 0750')
  t.ok(statSync(oneLevel).isSocket())
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
  const { base, port } = await started(t)
  for (const target of ['//', '///x', '//[', '*', 'http://evil/ready']) {
    t.match(await raw(port, `GET ${target} HTTP/1.1\r\nhost: localhost\r\nconnection: close\r\n\r\n`), /^HTTP\/1\.1 400 /, `${target} → 400`)
  }
  t.equal((await fetch(`${base}/healthz`)).status, 200, 'still alive')
})

t.test('a non-loopback bind is refused unless allowRemote is set', async (t) => {
  const port = await freePort()
  const refused = new AdminServer({ address: '0.0.0.0', port, allowRemote: false, socket: socketPath(t), log })
  const err = await t.rejects(refused.listen(), AdminBindError)
  t.match(err, { code: 'HOSTMESH_ERR_ADMIN_BIND', message: /refusing to bind the admin port to 0\.0\.0\.0/ })

  const allowed = new AdminServer({ address: '0.0.0.0', port, allowRemote: true, socket: socketPath(t), log })
  const addr = await allowed.listen()
  t.equal(addr.address, '0.0.0.0')
  await allowed.close()
})

t.test('a port in use is a clear bind error with the cause kept', async (t) => {
  const { admin } = await started(t)
  void admin
  const taken = Number(new URL((await started(t)).base).port)
  const second = new AdminServer({ address: '127.0.0.1', port: taken, allowRemote: false, socket: socketPath(t), log })
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

t.test('admin.maxConnections: the port holds that many, closes the next at once and counts it; the socket keeps its own', async (t) => {
  const metrics = createMetrics()
  const socket = socketPath(t)
  const admin = new AdminServer({ address: '127.0.0.1', port: await freePort(), allowRemote: false, socket, log, maxConnections: 3, registry: metrics.registry })
  registerCoreRoutes(admin, new Readiness([]), metrics)
  const { port } = await admin.listen()
  t.teardown(() => admin.destroy())
  const open = (): Promise<{ closed: Promise<number> }> => new Promise((resolve, reject) => {
    const s = connect(port, '127.0.0.1', () => {
      const at = Date.now()
      resolve({ closed: new Promise((r) => s.once('close', () => r(Date.now() - at))) })
    })
    s.on('error', () => undefined)
    t.teardown(() => s.destroy())
    s.once('error', reject)
  })
  const held = [await open(), await open(), await open()]
  const over = await open()
  t.ok(await over.closed < 1000, 'the fourth connection is closed at once')
  const counted = (await metrics.registry.getSingleMetricAsString('hostmesh_admin_connections_refused_total'))
  t.match(counted, /hostmesh_admin_connections_refused_total\{transport="tcp",reason="connections"\} 1\b/, 'and counted')
  const viaSocket = await adminRequest(socket, '/healthz')
  t.equal(viaSocket.status, 200, 'the socket still answers while the port is full')
  t.equal(held.length, 3)
})

t.test('a client error on the admin port gets 400 (not HTTP) or 408 (too slow), counted by reason', async (t) => {
  const metrics = createMetrics()
  const admin = new AdminServer({ address: '127.0.0.1', port: await freePort(), allowRemote: false, socket: socketPath(t), log, registry: metrics.registry, headersTimeoutMs: 300 })
  registerCoreRoutes(admin, new Readiness([]), metrics)
  const { port } = await admin.listen()
  t.teardown(() => admin.destroy())
  t.match(await raw(port, '\x16\x03\x01\x02\x00garbage\r\n\r\n'), /^HTTP\/1.1 400 /, 'garbage: 400')
  const started = Date.now()
  t.match(await raw(port, 'GET /metrics HTTP/1.1\r\nhost: localhost\r\nx-slow: '), /^HTTP\/1.1 408 /, 'a head that never ends: 408')
  t.ok(Date.now() - started < 3000, `within the header timeout and its 1 s check (${Date.now() - started} ms)`)
  const counted = await metrics.registry.getSingleMetricAsString('hostmesh_admin_connections_refused_total')
  t.match(counted, /\{transport="tcp",reason="bad_request"\} 1\b/)
  t.match(counted, /\{transport="tcp",reason="timeout"\} 1\b/)
})
