// splice on real TCP socket pairs: half-close keeps the other direction open, a reset on
// one side resets the other, and byte counts are reported once both sides closed.
import type { Socket } from 'node:net'
import t from 'tap'
import { splice, type SpliceResult } from '../../../daemon/tunnel/splice.ts'
import { tcpPair } from '../../helpers/ports.ts'

/** outer ⇄ a  [splice]  b ⇄ inner: two real TCP connections joined in the middle. */
async function spliced(): Promise<{ outer: Socket; inner: Socket; result: Promise<SpliceResult> }> {
  const [outer, a] = await tcpPair()
  const [b, inner] = await tcpPair()
  for (const s of [outer, a, b, inner]) s.on('error', () => undefined)
  return { outer, inner, result: new Promise<SpliceResult>((r) => splice(a, b, r)) }
}

/** `p`, or a rejection naming `what` after 3 s. */
async function within<T>(p: Promise<T>, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const late = new Promise<never>((_, reject) => { timer = setTimeout(() => reject(new Error(`not ${what} within 3 s`)), 3000) })
  try {
    return await Promise.race([p, late])
  } finally {
    clearTimeout(timer)
  }
}

/** Ends `from` with `text` and resolves with what `to` read until its end. */
async function sendAndEnd(from: Socket, to: Socket, text: string): Promise<string> {
  const got: Buffer[] = []
  to.on('data', (c: Buffer) => got.push(c))
  const ended = new Promise((r) => to.once('end', r))
  from.end(text)
  await ended
  return Buffer.concat(got).toString()
}

t.test('half-close: one direction ends, the other keeps flowing', async (t) => {
  const { outer, inner, result } = await spliced()
  t.equal(await sendAndEnd(outer, inner, 'hello'), 'hello', 'data and the end arrived')
  t.equal(await sendAndEnd(inner, outer, 'world'), 'world', 'the other direction was still open')
  t.match(await result, { aToB: 5, bToA: 5 })
})

t.test('a reset on one side resets the other', async (t) => {
  const { outer, inner, result } = await spliced()
  const outerClosed = new Promise((r) => outer.once('close', r))
  inner.resetAndDestroy() // the far peer resets: b sees ECONNRESET
  await within(outerClosed, 'the outer connection was closed')
  t.pass('the outer connection was closed too')
  t.match(await result, { aToB: 0, bToA: 0 })
})

t.test('closing a splice while a socket\'s shutdown is in flight still closes it and reports', async (t) => {
  const [outer, a] = await tcpPair()
  const [b, inner] = await tcpPair()
  for (const s of [outer, a, b, inner]) s.on('error', () => undefined)
  let joined: ReturnType<typeof splice> | undefined
  const done = new Promise((r) => { joined = splice(a, b, r) })
  const aClosed = new Promise((r) => a.once('close', r))
  // What happens when a tunnel's far end sends its END_STREAM and then its RST in one read
  // (a session dying under a tunnel): a is ended and reset before its shutdown completes.
  // libuv refuses a TCP reset then (uv_tcp_close_reset: EINVAL) and node never closes the
  // handle: the fd leaked and splice never reported.
  a.end()
  joined!.close(new Error('revoked'))
  await within(aClosed, 'the socket was closed')
  t.match(await within(done, 'splice reported'), { error: { message: 'revoked' } }, 'reported once both sides closed')
  inner.destroy()
  outer.destroy()
})
