// UpstreamPool against real local servers: one keep-alive undici Pool per key whose connections
// come from the caller's connect (a TCP socket, or any Duplex as an HBONE stream is), one h2c
// session per key shared by concurrent callers and replaced when it goes away, connect
// failures reaching the caller without poisoning the key, and close()/destroy().
import http, { type Agent } from 'node:http'
import http2, { type ClientHttp2Session, type ServerHttp2Session } from 'node:http2'
import { connect, type AddressInfo, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import t, { type Test } from 'tap'
import type { Dispatcher } from 'undici'
import { oneShotAgent, UpstreamPool } from '../../../daemon/l7/pool.ts'

function pool(t: Test): UpstreamPool {
  const p = new UpstreamPool()
  t.teardown(() => p.destroy())
  return p
}

/** An HTTP/1.1 server that answers with the number of the connection the request came on. */
async function h1Server(t: Test): Promise<{ port: number; server: http.Server; connections: number }> {
  const s = { port: 0, server: http.createServer(), connections: 0 }
  s.server.on('connection', () => { s.connections++ })
  s.server.on('request', (req, res) => { req.resume(); req.on('end', () => res.end(String(s.connections))) })
  await new Promise<void>((r) => s.server.listen(0, '127.0.0.1', r))
  s.port = (s.server.address() as AddressInfo).port
  t.teardown(() => { s.server.closeAllConnections(); s.server.close() })
  return s
}

/** An h2c server; `sessions` are the server sides, in order. */
async function h2Server(t: Test): Promise<{ port: number; sessions: ServerHttp2Session[] }> {
  const s = { port: 0, sessions: [] as ServerHttp2Session[] }
  const server = http2.createServer()
  server.on('session', (session) => s.sessions.push(session))
  server.on('stream', (stream) => { stream.respond({ ':status': 200 }); stream.end('ok') })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  s.port = (server.address() as AddressInfo).port
  t.teardown(() => { for (const x of s.sessions) x.destroy(); server.close() })
  return s
}

const tcp = (port: number) => (): Promise<Duplex> => new Promise((resolve, reject) => {
  const s: Socket = connect({ host: '127.0.0.1', port }, () => resolve(s))
  s.once('error', reject)
})

async function send(d: Dispatcher, path = '/'): Promise<{ status: number; body: string }> {
  const r = await d.request({ method: 'GET', path, headers: { host: 'upstream' } })
  return { status: r.statusCode, body: await r.body.text() }
}

function get(agent: Agent, path = '/'): Promise<{ status: number; body: string }> {
  return new Promise((resolve, reject) => {
    const req = http.request({ agent, host: 'upstream', path }, (res) => {
      let body = ''
      res.on('data', (c: Buffer) => { body += c.toString() })
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body }))
    })
    req.on('error', reject)
    req.end()
  })
}

function h2get(session: ClientHttp2Session): Promise<number> {
  return new Promise((resolve, reject) => {
    const s = session.request({ ':path': '/' })
    s.on('response', (h) => resolve(Number(h[':status'])))
    s.on('error', reject)
    s.resume()
  })
}

t.test('one pool per key; its connections come from connect and are kept alive', async (t) => {
  const srv = await h1Server(t)
  const p = pool(t)
  let dials = 0
  const dial = tcp(srv.port)
  const agent = p.dispatcher('w|a', `127.0.0.1:${srv.port}`, () => { dials++; return dial() })
  t.equal(p.dispatcher('w|a', 'x:1', () => { throw new Error('not called') }), agent, 'the same key: the same pool')
  t.not(p.dispatcher('w|b', 'x:1', dial), agent, 'another key: another pool')
  t.same(p.size, { pools: 2, sessions: 0 })
  // undici's Pool may open a second connection while the first is still finishing its
  // response; after that, requests reuse them.
  const answers: string[] = []
  for (let i = 0; i < 10; i++) answers.push((await send(agent)).body)
  t.ok(dials <= 2, `ten requests, at most two connections (${dials})`)
  t.equal(answers.at(-1), answers.at(-2), 'the last requests reuse a kept-alive connection')
  t.equal(srv.connections, dials)
})

t.test('a connection that is not a socket (an HTTP/2 CONNECT stream, as HBONE gives) is reused too', async (t) => {
  // The tunnel's far end: each CONNECT stream is handed to an HTTP/1.1 server as its connection.
  const h1 = http.createServer((req, res) => { req.resume(); res.end('pong') })
  const tunnel = http2.createServer()
  tunnel.on('stream', (stream) => { stream.respond({ ':status': 200 }); h1.emit('connection', stream) })
  await new Promise<void>((r) => tunnel.listen(0, '127.0.0.1', r))
  const session = http2.connect(`http://127.0.0.1:${(tunnel.address() as AddressInfo).port}`)
  t.teardown(() => { session.destroy(); tunnel.close(); h1.close() })
  const p = pool(t)
  let dials = 0
  const agent = p.dispatcher('w|stream', '10.0.0.1:8080', () => new Promise((resolve, reject) => {
    dials++
    const s = session.request({ ':method': 'CONNECT', ':authority': '10.0.0.1:8080' })
    s.once('response', () => resolve(s))
    s.once('error', reject)
  }))
  for (let i = 0; i < 10; i++) t.equal((await send(agent)).body, 'pong')
  t.ok(dials <= 2, `reused: CONNECT streams carry many requests (${dials} for 10)`)
})

t.test('a connect failure reaches the request, and the next request dials again', async (t) => {
  const srv = await h1Server(t)
  const p = pool(t)
  let fail = true
  const dial = tcp(srv.port)
  const agent = p.dispatcher('w|flaky', `127.0.0.1:${srv.port}`, () => (fail ? Promise.reject(new Error('no route to host')) : dial()))
  await t.rejects(send(agent), { message: 'no route to host' })
  fail = false
  t.equal((await send(agent)).status, 200)
})

t.test('oneShotAgent: its connection is not kept', async (t) => {
  const srv = await h1Server(t)
  let dials = 0
  const dial = tcp(srv.port)
  const agent = oneShotAgent(() => { dials++; return dial() })
  t.teardown(() => agent.destroy())
  await get(agent)
  await get(agent)
  t.equal(dials, 2)
})

t.test('one h2c session per key, shared by callers that ask at once', async (t) => {
  const srv = await h2Server(t)
  const p = pool(t)
  let dials = 0
  const dial = tcp(srv.port)
  const connectCounted = (): Promise<Duplex> => { dials++; return dial() }
  const [s1, s2, s3] = await Promise.all([1, 2, 3].map(() => p.session('w|h2', `127.0.0.1:${srv.port}`, connectCounted)))
  t.equal(dials, 1, 'one connect for three callers')
  t.ok(s1 === s2 && s2 === s3)
  t.equal(await h2get(s1!), 200)
  t.equal(await p.session('w|h2', `127.0.0.1:${srv.port}`, connectCounted), s1, 'a live session is reused')
  t.same(p.size, { pools: 0, sessions: 1 })
})

t.test('a session that goes away (GOAWAY, close) is replaced on the next call', async (t) => {
  const srv = await h2Server(t)
  const p = pool(t)
  const key = 'w|h2-replace'
  const authority = `127.0.0.1:${srv.port}`
  const first = await p.session(key, authority, tcp(srv.port))
  const gone = new Promise<void>((r) => first.once('goaway', () => r()))
  srv.sessions[0]!.goaway()
  await gone
  const second = await p.session(key, authority, tcp(srv.port))
  t.not(second, first, 'a new session after GOAWAY')
  t.equal(await h2get(second), 200)
  const closed = new Promise<void>((r) => second.once('close', () => r()))
  srv.sessions[1]!.destroy()
  await closed
  t.same(p.size, { pools: 0, sessions: 0 }, 'a closed session is dropped')
  const third = await p.session(key, authority, tcp(srv.port))
  t.not(third, second)
  t.equal(await h2get(third), 200)
})

t.test('a session that cannot be opened rejects every waiting caller; the key can be tried again', async (t) => {
  const p = pool(t)
  const refused = (): Promise<Duplex> => Promise.reject(new Error('refused'))
  const waiting = [p.session('w|h2-fail', 'x:1', refused), p.session('w|h2-fail', 'x:1', refused)]
  for (const w of waiting) await t.rejects(w, { message: 'refused' })
  const srv = await h2Server(t)
  t.equal(await h2get(await p.session('w|h2-fail', `127.0.0.1:${srv.port}`, tcp(srv.port))), 200, 'then a good connection works')
})

t.test('close() lets sessions end gracefully; destroy() ends everything and forgets it', async (t) => {
  const srv = await h2Server(t)
  const h1 = await h1Server(t)
  const p = new UpstreamPool()
  const session = await p.session('w|c', `127.0.0.1:${srv.port}`, tcp(srv.port))
  const agent = p.dispatcher('w|c1', `127.0.0.1:${h1.port}`, tcp(h1.port))
  await send(agent)
  p.close()
  t.ok(session.closed, 'the session is closing')
  await new Promise<void>((r) => (session.destroyed ? r() : session.once('close', () => r())))
  t.same(p.size, { pools: 1, sessions: 0 })

  const q = new UpstreamPool()
  const s2 = await q.session('w|d', `127.0.0.1:${srv.port}`, tcp(srv.port))
  q.dispatcher('w|d1', `127.0.0.1:${h1.port}`, tcp(h1.port))
  q.destroy()
  t.ok(s2.destroyed)
  t.same(q.size, { pools: 0, sessions: 0 })
})
