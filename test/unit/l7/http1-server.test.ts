// The HTTP/1.1 server factory against the smuggling corpus, over real TCP connections and over
// a plain Duplex pair (the daemon hands it HBONE CONNECT streams): every rejection gets its
// status, closes the connection and reaches no handler; every control reaches the handler as
// many times as it holds requests, and the connection still serves the next one. Then the
// deadlines (a slow head is refused, a slow body and an idle keep-alive are not), errors that
// arrive after the handler started, and the handlers a caller adds itself.
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { connect, createServer, type Server as TcpServer, type Socket } from 'node:net'
import { duplexPair, type Duplex } from 'node:stream'
import t, { type Test } from 'tap'
import { clientErrorRejection, rejectionResponse } from '../../../daemon/l7/client-error.ts'
import { createHttp1Server } from '../../../daemon/l7/http1-server.ts'
import { DEFAULT_L7_LIMITS, type L7Limits } from '../../../daemon/l7/limits.ts'
import { HTTP_CORPUS, type HttpVector } from '../../fixtures/http-corpus.ts'
import { until } from '../../helpers/admin.ts'

const LIMITS: L7Limits = { ...DEFAULT_L7_LIMITS, headerTimeoutMs: 300 }

interface Harness {
  readonly http: Server
  readonly port: number
  /** Handler calls, and how many of those requests arrived whole. */
  calls: number
  complete: number
  /** Requests whose body was cut off (req 'error'). */
  aborted: number
  rejections: { status: number; reason: string }[]
  /** Server sides of the TCP connections, as accepted. */
  readonly accepted: Socket[]
  reset(): void
}

/** A TCP listener that hands every connection to a fresh createHttp1Server, whose handler answers 200 once the body is read. */
async function harness(t: Test, limits: L7Limits = LIMITS): Promise<Harness> {
  const onRequest = (req: IncomingMessage, res: ServerResponse): void => {
    h.calls++
    let bytes = 0
    req.on('data', (c: Buffer) => { bytes += c.length })
    req.on('error', () => { h.aborted++ })
    req.on('end', () => {
      h.complete++
      res.setHeader('x-body-bytes', String(bytes))
      res.end('ok')
    })
  }
  const http = createHttp1Server(limits, onRequest, { rejected: (_socket, status, reason) => h.rejections.push({ status, reason }) })
  const accepted: Socket[] = []
  const tcp: TcpServer = createServer((s) => {
    accepted.push(s)
    http.emit('connection', s)
  })
  await new Promise<void>((r) => tcp.listen(0, '127.0.0.1', r))
  const h: Harness = {
    http, port: (tcp.address() as { port: number }).port, accepted,
    calls: 0, complete: 0, aborted: 0, rejections: [],
    reset() { h.calls = 0; h.complete = 0; h.aborted = 0; h.rejections = [] },
  }
  t.teardown(() => {
    for (const s of accepted) s.destroy()
    tcp.close()
    http.close()
  })
  return h
}

/** One client connection: what it has read, and whether the server ended it. */
interface Client {
  readonly io: Duplex
  data: string
  ended: boolean
  closed: boolean
}

function watch(io: Duplex): Client {
  const c: Client = { io, data: '', ended: false, closed: false }
  io.on('data', (d: Buffer) => { c.data += d.toString('latin1') })
  io.on('end', () => { c.ended = true })
  io.on('close', () => { c.closed = true })
  io.on('error', () => undefined)
  return c
}

/** `halfOpen`: the client does not end its side when the server ends its own. */
async function tcpClient(port: number, halfOpen = false): Promise<Client> {
  const s = connect({ port, host: '127.0.0.1', allowHalfOpen: halfOpen })
  await new Promise((r) => s.once('connect', r))
  return watch(s)
}

function duplexClient(http: Server): Client {
  const [client, server] = duplexPair()
  http.emit('connection', server)
  return watch(client)
}

/** Final statuses read so far (an interim 100 Continue does not count). */
function statuses(c: Client): number[] {
  return [...c.data.matchAll(/HTTP\/1\.1 (\d{3}) /g)].map((m) => Number(m[1])).filter((s) => s >= 200)
}

const wire = (bytes: string | Buffer): Buffer => typeof bytes === 'string' ? Buffer.from(bytes, 'latin1') : bytes

/** Sends `v` in one write and checks what came back, on a connection `open` makes. */
async function replay(t: Test, h: Harness, v: HttpVector, open: () => Promise<Client> | Client): Promise<void> {
  h.reset()
  const c = await open()
  c.io.write(wire(v.bytes))
  const control = v.expect === 200
  const requests = v.requests ?? (control ? 1 : 0)
  const closes = v.closes ?? !control
  const answers = control ? requests : 1
  await until(() => statuses(c).length >= answers && (!closes || c.ended), `${answers} answer(s)${closes ? ' and the end' : ''}`, 3000, 10)
  t.same(statuses(c), Array(answers).fill(v.expect), `answered ${v.expect}`)
  t.equal(h.calls, requests, `${requests} request(s) reached the handler`)
  t.equal(h.complete, requests, 'each of them whole')
  if (v.by === 'llhttp') t.match(h.rejections, [{ status: v.expect, reason: /^HPE_/ }], 'refused by llhttp, reported once')
  else if (v.by === 'timeout') t.same(h.rejections, [{ status: 408, reason: 'ERR_HTTP_REQUEST_TIMEOUT' }], 'refused at the header deadline, reported once')
  else if (v.by === 'guard') t.match(h.rejections, [{ status: v.expect, reason: /^(?!HPE_)/ }], 'refused by the guard, reported once')
  else t.same(h.rejections, [], 'nothing reported')
  t.equal(h.rejections.length, v.by === 'node' || control ? 0 : 1)
  if (closes) {
    t.ok(c.ended, 'the server ended the connection')
  } else {
    // Still open and in step: the next request gets its answer.
    c.io.write(wire('GET /next HTTP/1.1\r\nHost: svc.test\r\n\r\n'))
    await until(() => statuses(c).length === answers + 1, 'the answer to a following request', 3000, 10)
    t.equal(statuses(c).at(-1), 200, 'the connection still serves requests')
  }
  c.io.destroy()
}

t.test('the corpus over TCP', async (t) => {
  const h = await harness(t)
  for (const v of HTTP_CORPUS) await t.test(v.name, (t) => replay(t, h, v, () => tcpClient(h.port)))
})

t.test('the corpus over a Duplex pair, as HBONE CONNECT streams arrive', async (t) => {
  const h = await harness(t)
  for (const v of HTTP_CORPUS) await t.test(v.name, (t) => replay(t, h, v, () => duplexClient(h.http)))
})

t.test('the corpus is broad and its names are unique', async (t) => {
  const names = new Set(HTTP_CORPUS.map((v) => v.name))
  t.equal(names.size, HTTP_CORPUS.length)
  t.ok(HTTP_CORPUS.filter((v) => v.expect !== 200).length >= 40, 'at least 40 refusals')
  t.ok(HTTP_CORPUS.filter((v) => v.expect === 200).length >= 5, 'and valid controls')
  for (const v of HTTP_CORPUS) t.ok(v.source.length > 0, `${v.name} has a source`)
})

t.test('slowloris: a head dripped byte by byte is refused at the header deadline', async (t) => {
  const h = await harness(t)
  const c = await tcpClient(h.port)
  const head = 'GET / HTTP/1.1\r\nHost: svc.test\r\nX-Slow: ' + 'a'.repeat(200)
  const started = Date.now()
  let i = 0
  const drip = setInterval(() => { if (i < head.length && !c.closed) c.io.write(head[i++]!) }, 20)
  t.teardown(() => clearInterval(drip))
  await until(() => c.ended, 'the 408', 3000, 10)
  const took = Date.now() - started
  t.same(statuses(c), [408])
  t.ok(took >= 300 && took < 300 + 1000, `408 after ${took} ms, within a second of the 300 ms deadline`)
  t.same(h.rejections, [{ status: 408, reason: 'ERR_HTTP_REQUEST_TIMEOUT' }])
  t.equal(h.calls, 0)
})

t.test('a connection that sends nothing is refused at the header deadline', async (t) => {
  const h = await harness(t)
  const c = await tcpClient(h.port)
  await until(() => c.ended, 'the 408', 3000, 10)
  t.same(statuses(c), [408])
})

t.test('a body slower than the header deadline is not cut', async (t) => {
  const h = await harness(t)
  const c = await tcpClient(h.port)
  c.io.write('POST / HTTP/1.1\r\nHost: svc.test\r\nContent-Length: 10\r\n\r\n')
  for (let i = 0; i < 10; i++) {
    await new Promise((r) => setTimeout(r, 100)) // 1 s in all: over three header deadlines
    c.io.write('x')
  }
  await until(() => statuses(c).length === 1, 'the answer', 3000, 10)
  t.same(statuses(c), [200])
  t.match(c.data, /x-body-bytes: 10\r\n/i, 'the whole body arrived')
  t.same(h.rejections, [])
  c.io.destroy()
})

t.test('an idle keep-alive connection is not refused at the header deadline, and closes at the idle timeout', async (t) => {
  const h = await harness(t, { ...LIMITS, idleTimeoutMs: 1500 })
  const c = await tcpClient(h.port)
  c.io.write('GET /1 HTTP/1.1\r\nHost: svc.test\r\n\r\n')
  await until(() => statuses(c).length === 1, 'the first answer', 3000, 10)
  t.match(c.data, /Keep-Alive: timeout=1\r\n/, 'the idle timeout is announced')
  await new Promise((r) => setTimeout(r, 700))
  c.io.write('GET /2 HTTP/1.1\r\nHost: svc.test\r\n\r\n')
  await until(() => statuses(c).length === 2, 'the second answer', 3000, 10)
  t.same(statuses(c), [200, 200])
  t.same(h.rejections, [], 'nothing refused')
  t.notOk(c.closed, 'still open')
  // node closes an idle keep-alive connection a second after the announced timeout.
  await until(() => c.closed, 'the idle close', 5000, 20)
  t.same(h.rejections, [], 'an idle close is not a refusal')
})

t.test('a framing error after the handler started aborts its request and closes the connection', async (t) => {
  const h = await harness(t)
  const c = await tcpClient(h.port)
  c.io.write('POST / HTTP/1.1\r\nHost: svc.test\r\nTransfer-Encoding: chunked\r\n\r\n1\r\nx\r\n')
  await until(() => h.calls === 1, 'the handler', 3000, 10)
  c.io.write('zz\r\n')
  await until(() => c.closed, 'the close', 3000, 10)
  t.equal(h.aborted, 1, 'the request errored')
  t.equal(h.complete, 0, 'and never ended')
  t.same(h.rejections, [{ status: 400, reason: 'HPE_INVALID_CHUNK_SIZE' }])
  t.same(statuses(c), [], 'no answer interleaved with the one the handler may have started')
})

t.test('a bad request pipelined behind a good one in the same write: refused before any handler runs', async (t) => {
  const h = await harness(t)
  const c = await tcpClient(h.port)
  c.io.write('GET /1 HTTP/1.1\r\nHost: svc.test\r\n\r\nGET /2 HTTP/1.1\r\nHost: svc.test\r\nX: a\x00b\r\n\r\n')
  await until(() => c.ended, 'the end', 3000, 10)
  t.same(statuses(c), [400])
  t.equal(h.calls, 0)
})

t.test('a good request pipelined behind a refused one goes with the connection', async (t) => {
  const h = await harness(t)
  const c = await tcpClient(h.port)
  c.io.write('GET /1 HTTP/1.1\r\nHost: a b\r\n\r\nGET /2 HTTP/1.1\r\nHost: svc.test\r\n\r\n')
  await until(() => c.ended, 'the end', 3000, 10)
  await new Promise((r) => setImmediate(r))
  t.same(statuses(c), [400])
  t.equal(h.calls, 0)
  t.same(h.rejections, [{ status: 400, reason: 'invalid Host' }])
})

t.test('a bad request after a good one was answered: 200, then 400 and the end', async (t) => {
  const h = await harness(t)
  const c = await tcpClient(h.port)
  c.io.write('GET /1 HTTP/1.1\r\nHost: svc.test\r\n\r\n')
  await until(() => statuses(c).length === 1, 'the first answer', 3000, 10)
  c.io.write('GET /2 HTTP/2.0\r\nHost: svc.test\r\n\r\n')
  await until(() => c.ended, 'the end', 3000, 10)
  t.same(statuses(c), [200, 400])
  t.equal(h.calls, 1)
  t.same(h.rejections, [{ status: 400, reason: 'unsupported HTTP version' }])
})

t.test('a refused connection is reported once and closed within a second, even if the client never stops sending', async (t) => {
  const h = await harness(t)
  const c = await tcpClient(h.port, true)
  c.io.write('GET / HTTP/1.1\r\nHost: svc.test\r\nX-A : 1\r\n\r\n')
  const garbage = setInterval(() => c.io.write('more garbage\r\n'), 50)
  t.teardown(() => clearInterval(garbage))
  await until(() => c.ended, 'the answer', 3000, 10)
  const server = h.accepted[0]!
  const refusedAt = Date.now()
  await until(() => server.destroyed, 'the server side closed', 3000, 10)
  const took = Date.now() - refusedAt
  t.ok(took > 700 && took < 2500, `after the linger time (${took} ms)`)
  t.same(statuses(c), [400])
  t.same(h.rejections, [{ status: 400, reason: 'HPE_INVALID_HEADER_TOKEN' }], 'reported once')
})

t.test('a client that resets mid-head is not reported as a refusal', async (t) => {
  const h = await harness(t)
  const c = await tcpClient(h.port)
  c.io.write('GET / HTTP/1.1\r\nHost: sv')
  await until(() => h.accepted.length === 1, 'the connection', 3000, 10)
  ;(c.io as Socket).resetAndDestroy()
  await until(() => h.accepted[0]!.destroyed, 'the server side closed', 3000, 10)
  t.same(h.rejections, [])
})

t.test('a client that closes mid-head is not answered or reported', async (t) => {
  const h = await harness(t)
  const c = await tcpClient(h.port)
  c.io.end('GET / HTTP/1.1\r\nHost: sv')
  await until(() => c.closed, 'the close', 3000, 10)
  t.same(statuses(c), [])
  t.same(h.rejections, [])
})

t.test('Upgrade and Expect handlers a caller adds see only requests that pass the guard', async (t) => {
  const h = await harness(t)
  const upgrades: string[] = []
  const continues: string[] = []
  h.http.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
    upgrades.push(req.url!)
    socket.end('HTTP/1.1 101 Switching Protocols\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n')
  })
  h.http.on('checkContinue', (req: IncomingMessage, res: ServerResponse) => {
    continues.push(req.url!)
    res.writeContinue()
    req.resume()
    req.on('end', () => res.end('ok'))
  })
  const exchange = async (bytes: string): Promise<Client> => {
    const c = await tcpClient(h.port)
    c.io.write(bytes)
    await until(() => statuses(c).length > 0 || c.data.includes(' 101 '), 'an answer', 3000, 10)
    return c
  }
  const upgrade = (host: string): string => `GET /ws HTTP/1.1\r\nHost: ${host}\r\nConnection: Upgrade\r\nUpgrade: x\r\n\r\n`
  let c = await exchange(upgrade('a b'))
  t.same(statuses(c), [400], 'an Upgrade with an invalid Host is refused')
  c = await exchange(`GET / HTTP/1.1\r\nHost: svc.test\r\nX-A: 1, 2\r\nHost: svc.test\r\n\r\n${upgrade('svc.test')}`)
  await until(() => c.closed, 'the close', 3000, 10)
  t.same(statuses(c), [400], 'an Upgrade pipelined behind a refused request is dropped')
  c = await exchange(upgrade('svc.test'))
  t.match(c.data, /^HTTP\/1\.1 101 /, 'a valid one reaches the Upgrade handler')
  t.same(upgrades, ['/ws'])
  const expect = (te: string): string => `POST /up HTTP/1.1\r\nHost: svc.test\r\nExpect: 100-continue\r\nTransfer-Encoding: ${te}\r\n\r\n`
  c = await exchange(expect('identity, chunked'))
  t.same(statuses(c), [501], 'an Expect request with an unsupported coding is refused')
  t.notMatch(c.data, / 100 Continue/, 'without a 100 Continue first')
  c = await exchange(`${expect('chunked')}0\r\n\r\n`)
  t.match(c.data, /^HTTP\/1\.1 100 Continue\r\n\r\nHTTP\/1\.1 200 /, 'a valid one reaches the checkContinue handler')
  t.same(continues, ['/up'])
  t.equal(h.calls, 0, 'and not the request handler')
  t.same(h.rejections.map((r) => r.status), [400, 400, 501])
})

t.test('clientError codes: status and report', async (t) => {
  t.same(clientErrorRejection({ code: 'ERR_HTTP_REQUEST_TIMEOUT' }), { status: 408, reason: 'ERR_HTTP_REQUEST_TIMEOUT' })
  t.same(clientErrorRejection({ code: 'HPE_HEADER_OVERFLOW' }), { status: 431, reason: 'HPE_HEADER_OVERFLOW' })
  t.same(clientErrorRejection({ code: 'HPE_CHUNK_EXTENSIONS_OVERFLOW' }), { status: 413, reason: 'HPE_CHUNK_EXTENSIONS_OVERFLOW' })
  t.same(clientErrorRejection({ code: 'HPE_INVALID_TRANSFER_ENCODING', reason: 'Transfer-Encoding can\'t be present with Content-Length' }), { status: 400, reason: 'HPE_INVALID_TRANSFER_ENCODING' })
  t.same(clientErrorRejection({ code: 'HPE_INVALID_TRANSFER_ENCODING', reason: 'Request has invalid `Transfer-Encoding`' }), { status: 501, reason: 'HPE_INVALID_TRANSFER_ENCODING' })
  t.same(clientErrorRejection({ code: 'HPE_INVALID_TRANSFER_ENCODING' }), { status: 501, reason: 'HPE_INVALID_TRANSFER_ENCODING' })
  t.same(clientErrorRejection({ code: 'HPE_INVALID_METHOD' }), { status: 400, reason: 'HPE_INVALID_METHOD' })
  t.equal(clientErrorRejection({ code: 'HPE_INVALID_EOF_STATE' }), undefined, 'the client closed mid-request')
  t.equal(clientErrorRejection({ code: 'ECONNRESET' }), undefined, 'the client reset')
  t.equal(clientErrorRejection({}), undefined)
  t.equal(rejectionResponse(431).toString('latin1'), 'HTTP/1.1 431 Request Header Fields Too Large\r\nConnection: close\r\nContent-Length: 0\r\n\r\n')
  t.equal(rejectionResponse(431), rejectionResponse(431), 'built once')
  t.equal(rejectionResponse(599).toString('latin1').split('\r\n')[0], 'HTTP/1.1 599 ', 'a status without a reason phrase')
})

t.test('Envoy\'s limits by default', async (t) => {
  t.same(DEFAULT_L7_LIMITS, { maxRequestHeadersBytes: 61_440, maxRequestHeaders: 100, headerTimeoutMs: 10_000, idleTimeoutMs: 300_000 })
  t.ok(Object.isFrozen(DEFAULT_L7_LIMITS))
})
