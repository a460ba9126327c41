import { PassThrough, type Readable } from 'node:stream'
import t from 'tap'
import { ReplayBody } from '../../../daemon/l7/replay-body.ts'

const read = (r: Readable): Promise<Buffer> => new Promise((resolve, reject) => {
  const parts: Buffer[] = []
  r.on('data', (c: Buffer) => parts.push(c))
  r.once('end', () => resolve(Buffer.concat(parts)))
  r.once('error', reject)
})

t.test('a body within the limit streams to the first try and replays whole to the next', async (t) => {
  const source = new PassThrough()
  let counted = 0
  const body = new ReplayBody(source, (n) => { counted += n }, 1024)
  const first = body.attempt()
  const got = read(first)
  source.write('hello ')
  source.end('world')
  t.equal((await got).toString(), 'hello world')
  t.ok(body.replayable)
  t.equal(body.complete?.toString(), 'hello world')
  t.equal((await read(body.attempt())).toString(), 'hello world', 'the retry gets the same bytes')
  t.equal(counted, 11, 'counted once, not per try')
})

t.test('a retry while the body is still arriving gets what was held, then the rest', async (t) => {
  const source = new PassThrough()
  const body = new ReplayBody(source, () => undefined, 1024)
  const first = body.attempt()
  first.resume()
  source.write('abc')
  await new Promise((r) => setImmediate(r))
  const second = body.attempt()
  t.ok(first.destroyed, 'the abandoned try\'s body is detached')
  const got = read(second)
  source.end('def')
  t.equal((await got).toString(), 'abcdef')
  t.equal(body.complete?.toString(), 'abcdef', 'held whole once it ended')
})

t.test('past the limit the copy is dropped: the try in flight still gets every byte', async (t) => {
  const source = new PassThrough()
  const body = new ReplayBody(source, () => undefined, 8)
  const got = read(body.attempt())
  source.write('0123456789')
  source.end('abc')
  t.equal((await got).toString(), '0123456789abc')
  t.notOk(body.replayable)
  t.equal(body.complete, undefined)
  t.throws(() => body.attempt(), /no longer held/)
})

t.test('a body that ends early fails the try in flight and is not replayable', async (t) => {
  const source = new PassThrough()
  const body = new ReplayBody(source, () => undefined, 1024)
  const out = body.attempt()
  const failed = new Promise<boolean>((resolve) => out.once('close', () => resolve(true)))
  out.resume()
  source.write('abc')
  source.destroy()
  t.ok(await failed)
  t.notOk(body.replayable)
})

t.test('backpressure: the client is read only as fast as the try takes it', async (t) => {
  const source = new PassThrough({ highWaterMark: 4 })
  const body = new ReplayBody(source, () => undefined, 1 << 20)
  const out = body.attempt()
  // Nobody reads `out`: once its buffer is full the source is paused.
  for (let i = 0; i < 100; i++) source.write(Buffer.alloc(1024))
  await new Promise((r) => setImmediate(r))
  t.ok(source.isPaused(), 'the source is paused')
  t.ok(out.readableLength <= 64 * 1024, `not everything was pulled in: ${out.readableLength}`)
  out.destroy()
  source.destroy()
})
