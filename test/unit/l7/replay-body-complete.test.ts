// ReplayBody.whenComplete(): the mirror stage's wait for a request body. It resolves with the
// whole body once the try in flight has read it, and with undefined as soon as the body
// outgrows the buffer or the client's body ends early; it never reads the body itself.
import { PassThrough, Writable } from 'node:stream'
import { pipeline } from 'node:stream/promises'
import t from 'tap'
import { ReplayBody } from '../../../daemon/l7/replay-body.ts'

/** Reads what a try would send, to its end. */
async function drain(body: ReplayBody): Promise<Buffer> {
  const chunks: Buffer[] = []
  await pipeline(body.attempt(), new Writable({ write(c: Buffer, _e, cb) { chunks.push(c); cb() } }))
  return Buffer.concat(chunks)
}

t.test('resolves with the whole body once the try has read it; not before', async (t) => {
  const src = new PassThrough()
  let counted = 0
  const body = new ReplayBody(src, (n) => { counted += n }, 16)
  let settled = false
  const done = body.whenComplete().then((b) => { settled = true; return b })
  src.write('hello ')
  src.end('world')
  await new Promise((r) => setTimeout(r, 20))
  t.equal(settled, false, 'no try has read the body yet: still waiting')
  t.equal((await drain(body)).toString(), 'hello world')
  t.equal((await done)?.toString(), 'hello world')
  t.equal(counted, 11)
  t.equal((await body.whenComplete())?.toString(), 'hello world', 'asked again after the end: at once')
})

t.test('undefined as soon as the body outgrows the limit', async (t) => {
  const src = new PassThrough()
  const body = new ReplayBody(src, () => undefined, 8)
  const done = body.whenComplete()
  const sent = drain(body)
  src.write('12345')
  src.write('67890')
  t.equal(await done, undefined, 'before the body has even ended')
  src.end('!')
  t.equal((await sent).toString(), '1234567890!', 'the try still gets all of it')
  t.equal(await body.whenComplete(), undefined, 'and asking again says the same')
})

t.test('undefined when the client\'s body ends early', async (t) => {
  const src = new PassThrough()
  const body = new ReplayBody(src, () => undefined, 64)
  const done = body.whenComplete()
  const out = body.attempt()
  out.resume()
  src.write('part')
  await new Promise((r) => setTimeout(r, 10))
  src.destroy()
  t.equal(await done, undefined)
})

t.test('an empty body completes as an empty buffer', async (t) => {
  const src = new PassThrough()
  const body = new ReplayBody(src, () => undefined)
  const done = body.whenComplete()
  src.end()
  await drain(body)
  const b = await done
  t.ok(Buffer.isBuffer(b))
  t.equal(b?.length, 0)
})

t.test('undefined when the body is thrown away unread (node\'s server dumps it: data listeners removed, then its end)', async (t) => {
  const src = new PassThrough()
  const body = new ReplayBody(src, () => undefined)
  const done = body.whenComplete()
  src.end('never read by a try')
  // What IncomingMessage._dump() does once a response is finished without the body read.
  src.removeAllListeners('data')
  src.resume()
  t.equal(await done, undefined)
})
