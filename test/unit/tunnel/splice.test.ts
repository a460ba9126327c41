// splice on real TCP socket pairs: half-close keeps the other direction open, an abort on
// one side resets the other, and byte counts are reported once both sides closed.
import { connect, createServer, type Socket } from 'node:net'
import t from 'tap'
import { splice, type SpliceResult } from '../../../daemon/tunnel/splice.ts'

async function pair(): Promise<[Socket, Socket]> {
  return new Promise((resolve) => {
    const srv = createServer({ allowHalfOpen: true }, (server) => { srv.close(); resolve([client, server]) })
    let client: Socket
    srv.listen(0, '127.0.0.1', () => { client = connect({ port: (srv.address() as { port: number }).port, host: '127.0.0.1', allowHalfOpen: true }) })
  })
}

t.test('half-close: one direction ends, the other keeps flowing', async (t) => {
  const [outer, a] = await pair()
  const [b, inner] = await pair()
  for (const s of [outer, a, b, inner]) s.on('error', () => undefined)
  const result = new Promise<SpliceResult>((r) => splice(a, b, r))
  const innerGot: Buffer[] = []
  inner.on('data', (c: Buffer) => innerGot.push(c))
  const innerEnded = new Promise((r) => inner.once('end', r))
  outer.end('hello')
  await innerEnded
  t.equal(Buffer.concat(innerGot).toString(), 'hello', 'data and the end arrived')
  const outerGot: Buffer[] = []
  outer.on('data', (c: Buffer) => outerGot.push(c))
  const outerEnded = new Promise((r) => outer.once('end', r))
  inner.end('world')
  await outerEnded
  t.equal(Buffer.concat(outerGot).toString(), 'world', 'the other direction was still open')
  t.match(await result, { aToB: 5, bToA: 5 })
})

t.test('a reset on one side resets the other', async (t) => {
  const [outer, a] = await pair()
  const [b, inner] = await pair()
  for (const s of [outer, a, b, inner]) s.on('error', () => undefined)
  const result = new Promise<SpliceResult>((r) => splice(a, b, r))
  const outerClosed = new Promise((r) => outer.once('close', r))
  inner.resetAndDestroy() // the far peer resets: b sees ECONNRESET
  await Promise.race([outerClosed, new Promise((_, reject) => setTimeout(() => reject(new Error('the outer connection was not closed within 3 s')), 3000))])
  t.pass('the outer connection was closed too')
  t.match(await result, { aToB: 0, bToA: 0 })
})
