// withoutEmptyWrites() on a real HTTP/2 CONNECT stream (as HBONE carries HTTP/1.1): the writev
// shapes node:http produces ([head, body, ''] and [head+body, '']) arrive intact, and every
// write's callback still runs. Without it, Node 24 puts freed memory on the wire for these.
import http2, { type ClientHttp2Stream } from 'node:http2'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import { withoutEmptyWrites } from '../../../daemon/l7/empty-writes.ts'

const HEAD = `POST /admin/users HTTP/1.1\r\nhost: 10.96.0.20\r\nx-pad: ${'y'.repeat(300)}\r\ncontent-length: 8\r\n\r\n`

t.test('empty chunks are dropped from an HTTP/2 stream\'s writes, the rest arrives intact', async (t) => {
  const server = http2.createServer()
  const received = new Map<number, string>()
  server.on('stream', (stream) => {
    stream.respond({ ':status': 200 })
    let text = ''
    stream.on('data', (c: Buffer) => { text += c.toString('latin1') })
    stream.on('end', () => {
      received.set(Number(stream.id), text)
      stream.end()
    })
  })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  t.teardown(() => { session.destroy(); server.close() })

  const shapes: Record<string, (s: ClientHttp2Stream, done: () => void) => void> = {
    'head, body, empty string': (s, done) => { s.write(HEAD, 'latin1'); s.write(Buffer.from('secret=1')); s.write('', 'latin1', done) },
    'head and body, empty string': (s, done) => { s.write(`${HEAD}secret=1`, 'latin1'); s.write('', 'latin1', done) },
    'head, body, empty buffer': (s, done) => { s.write(HEAD, 'latin1'); s.write(Buffer.from('secret=1')); s.write(Buffer.alloc(0), done) },
    'only empty writes': (s, done) => { s.write('', 'latin1'); s.write(Buffer.alloc(0), done) },
  }
  for (const [name, write] of Object.entries(shapes)) {
    for (let i = 0; i < 20; i++) {
      const s = withoutEmptyWrites(session.request({ ':method': 'CONNECT', ':authority': '10.77.0.12:8080' }, { endStream: false }))
      await new Promise((r) => s.once('response', r))
      const id = s.id!
      const called = new Promise<void>((resolve) => {
        s.cork()
        write(s, resolve)
        s.uncork()
      })
      await called
      s.end()
      await new Promise((r) => s.once('close', r))
      for (let j = 0; j < 50 && !received.has(id); j++) await new Promise((r) => setTimeout(r, 5))
      const want = name === 'only empty writes' ? '' : `${HEAD}secret=1`
      if (received.get(id) !== want) {
        t.equal(received.get(id), want, `${name}: round ${i} arrived intact`)
        break
      }
      if (i === 19) t.pass(`${name}: 20 rounds arrived intact, each write's callback ran`)
    }
  }
})
