// A drain ends idle HTTP/1.1 connections only once they stayed idle for DRAIN_IDLE_MS: a
// request the client sends on one meanwhile is answered, with `Connection: close`, instead of
// meeting a closed connection (the soak's restart scenario lost requests to that race).
import { connect, createServer, type Socket } from 'node:net'
import type { AddressInfo } from 'node:net'
import t, { type Test } from 'tap'
import { DRAIN_IDLE_MS, HttpFront } from '../../../daemon/l7/detect.ts'
import { DEFAULT_L7_LIMITS } from '../../../daemon/l7/limits.ts'

async function front(t: Test): Promise<{ port: number; front: HttpFront<string> }> {
  const f = new HttpFront<string>(DEFAULT_L7_LIMITS, {
    request: (_req, res) => res.end('ok'),
    upgrade: (_req, socket) => socket.destroy(),
    stream: (stream) => stream.close(),
    sessionFailed: () => undefined,
    rejected: () => undefined,
  })
  const server = createServer((s) => f.serve(s, 'ctx', 'http'))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  t.teardown(() => { f.destroy(); server.close() })
  return { port: (server.address() as AddressInfo).port, front: f }
}

/** Sends one request on `s` and reads until a whole answer (or the close) came. */
function ask(s: Socket): Promise<string> {
  return new Promise((resolve) => {
    let got = ''
    const done = (): void => { s.off('data', onData); s.off('close', done); resolve(got) }
    const onData = (c: Buffer): void => { got += c.toString('latin1'); if (/\r\n\r\nok$/.test(got)) done() }
    s.on('data', onData)
    s.once('close', done)
    s.write('GET / HTTP/1.1\r\nhost: x\r\n\r\n')
  })
}

t.test('a request on an idle connection just after the drain began is answered, with Connection: close; then it closes', async (t) => {
  const { port, front: f } = await front(t)
  const s = connect(port, '127.0.0.1')
  s.on('error', () => undefined)
  const closed = new Promise((resolve) => s.once('close', resolve))
  t.match(await ask(s), /^HTTP\/1\.1 200[\s\S]*keep-alive/i, 'before the drain: kept alive')
  f.drain()
  await new Promise((resolve) => setTimeout(resolve, DRAIN_IDLE_MS / 4))
  const answer = await ask(s)
  t.match(answer, /^HTTP\/1\.1 200/, 'answered, not closed under it')
  t.match(answer, /\r\nConnection: close\r\n/i, 'and told to close')
  await closed
  t.pass('the connection closed after that answer')
})

t.test('an idle connection that stays idle through the drain closes after DRAIN_IDLE_MS', async (t) => {
  const { port, front: f } = await front(t)
  const s = connect(port, '127.0.0.1')
  s.on('error', () => undefined)
  await ask(s)
  const started = Date.now()
  const ended = new Promise((resolve) => s.once('end', resolve))
  f.drain()
  await ended
  const after = Date.now() - started
  t.ok(after >= DRAIN_IDLE_MS - 50 && after < DRAIN_IDLE_MS + 1500, `ended ${after} ms after the drain began`)
  s.destroy()
})
