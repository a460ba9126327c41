// splice on real TCP socket pairs: half-close keeps the other direction open, a reset on
// one side resets the other, and byte counts are reported once both sides closed.
import { once } from 'node:events'
import http2 from 'node:http2'
import type { AddressInfo, Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { Worker } from 'node:worker_threads'
import { constants as perf, PerformanceObserver } from 'node:perf_hooks'
import t from 'tap'
import { splice, type SpliceResult } from '../../../daemon/tunnel/splice.ts'
import { RELAY_GC_STEP, relayedBytes, relayScavenges, relayedChunks } from '../../../daemon/tunnel/relay-gc.ts'
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

t.test('bytes out of HTTP/2 streams pace young-generation collections: one forced scavenge per 16 MiB; bytes out of TCP do not', async (t) => {
  const minors: number[] = []
  const observer = new PerformanceObserver((list) => {
    for (const e of list.getEntries()) {
      const { kind, flags } = (e as unknown as { detail: { kind: number; flags: number } }).detail
      // A forced scavenge can come back as a mark-compact: V8 upgrades a young collection it
      // cannot be sure of promoting (old space near its limit, as under coverage in CI).
      const collection = kind === perf.NODE_PERFORMANCE_GC_MINOR || kind === perf.NODE_PERFORMANCE_GC_MAJOR
      if (collection && (flags & perf.NODE_PERFORMANCE_GC_FLAGS_FORCED) !== 0) minors.push(e.startTime)
    }
  })
  observer.observe({ entryTypes: ['gc'] })
  // client stream → h2 → server stream [splice] b ⇄ inner (TCP)
  const [b, inner] = await tcpPair()
  const server = http2.createServer()
  const result = new Promise<SpliceResult>((resolve) => server.once('stream', (stream) => { stream.respond({ ':status': 200 }); splice(stream, b, resolve) }))
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const session = http2.connect(`http://127.0.0.1:${(server.address() as AddressInfo).port}`)
  t.teardown(() => { observer.disconnect(); session.destroy(); server.close() })
  const outer = session.request({ ':method': 'CONNECT', ':authority': 'x:1' })
  const chunk = Buffer.alloc(1 << 20, 1)
  const through = async (from: Duplex, to: Duplex, mib: number): Promise<void> => {
    let got = 0
    const all = new Promise<void>((resolve) => to.on('data', (c: Buffer) => { got += c.length; if (got >= mib * chunk.length) resolve() }))
    for (let i = 0; i < mib; i++) if (!from.write(chunk)) await new Promise((r) => from.once('drain', r))
    await within(all, `${mib} MiB through`)
  }
  const before = relayScavenges()
  const chunksBefore = relayedChunks()
  await through(inner, outer, 40)
  t.equal(relayScavenges() - before, 0, '40 MiB out of the TCP socket: no forced scavenge')
  t.equal(relayedChunks(), chunksBefore, 'nor any chunk counted as relayed out of a stream')
  await through(outer, inner, 40)
  t.ok(relayedChunks() - chunksBefore >= 40, `the stream's chunks count as activity (${relayedChunks() - chunksBefore}; run/memory.ts)`)
  const forced = relayScavenges() - before
  t.ok(forced >= 2 && forced <= 3, `40 MiB out of the HTTP/2 stream: ${forced} forced (16 MiB steps)`)
  outer.end()
  inner.end()
  const r = await within(result, 'closed')
  t.equal(r.aToB + r.bToA, 80 * 2 ** 20, 'every byte counted')
  // gc entries reach observers asynchronously; wait for them, bounded.
  for (let i = 0; i < 40 && minors.length < forced; i++) await new Promise((resolve) => setTimeout(resolve, 50))
  t.ok(minors.length >= forced, `V8 reported ${minors.length} forced collections for ${forced} forced`)
})

t.test('worker threads do not force scavenges (measured counterproductive there: relay-gc.ts)', async (t) => {
  const code = `
    import { parentPort } from 'node:worker_threads'
    const { relayedBytes, relayScavenges, RELAY_GC_STEP } = await import(${JSON.stringify(new URL('../../../daemon/tunnel/relay-gc.ts', import.meta.url).href)})
    for (let i = 0; i < 4; i++) relayedBytes(RELAY_GC_STEP)
    parentPort.postMessage(relayScavenges())`
  const worker = new Worker(new URL(`data:text/javascript,${encodeURIComponent(code)}`))
  const [forced] = await once(worker, 'message') as [number]
  await worker.terminate()
  t.equal(forced, 0, '4 steps relayed in a worker thread: none forced')
  const before = relayScavenges()
  for (let i = 0; i < 2; i++) relayedBytes(RELAY_GC_STEP)
  t.equal(relayScavenges() - before, 2, 'the main thread: one per step')
})
