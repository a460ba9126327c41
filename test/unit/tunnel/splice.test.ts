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
  await Promise.race([outerClosed, new Promise((_, reject) => setTimeout(() => reject(new Error('the outer connection was not closed within 3 s')), 3000))])
  t.pass('the outer connection was closed too')
  t.match(await result, { aToB: 0, bToA: 0 })
})
