// The header handling every proxied request and response gets (RFC 9110 §7.6): hop-by-hop
// fields stop at hostmesh, the forwarding fields are added, and request ids are kept, created
// or replaced.
import type { IncomingHttpHeaders } from 'node:http'
import t from 'tap'
import { endToEnd, first, forwarded, requestIds, responseHeaders, type HeaderMap } from '../../../daemon/l7/headers.ts'

const UUID = /^[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-[0-9a-f]{12}$/
const TRACEPARENT = /^00-([0-9a-f]{32})-[0-9a-f]{16}-01$/
const VALID_TP = '00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01'

t.test('endToEnd drops the fixed hop-by-hop list, pseudo-headers and host', async (t) => {
  const incoming: IncomingHttpHeaders = {
    ':method': 'GET', ':path': '/x', ':authority': 'a.example', ':scheme': 'http',
    host: 'a.example', connection: 'keep-alive', 'keep-alive': 'timeout=5', 'proxy-connection': 'keep-alive',
    'transfer-encoding': 'chunked', upgrade: 'websocket', trailer: 'x-t', 'http2-settings': 'AAMAAABkAAQAAP__',
    'content-type': 'application/json', 'x-keep': 'yes', 'set-cookie': ['a=1', 'b=2'], accept: undefined,
  }
  t.same(endToEnd(incoming), { 'content-type': 'application/json', 'x-keep': 'yes', 'set-cookie': ['a=1', 'b=2'] })
})

t.test('endToEnd drops the fields the Connection header names, in any case and spacing', async (t) => {
  const out = endToEnd({ connection: ' X-Hop-One ,x-hop-two,, Content-MD5', 'x-hop-one': '1', 'x-hop-two': '2', 'content-md5': 'abc', 'x-end': 'e' })
  t.same(out, { 'x-end': 'e' })
  t.same(endToEnd({ connection: 'close', 'x-end': 'e' }), { 'x-end': 'e' }, 'a plain Connection: close names no field')
})

t.test('endToEnd keeps te only as `te: trailers`', async (t) => {
  t.equal(endToEnd({ te: 'trailers' }).te, 'trailers')
  t.equal(endToEnd({ te: 'deflate, trailers' }).te, 'trailers', 'trailers in a list')
  t.equal(endToEnd({ te: 'Trailers;q=0.5, gzip' }).te, 'trailers', 'with parameters, any case')
  t.equal(endToEnd({ te: 'gzip' }).te, undefined, 'other codings are hop-by-hop')
  t.equal(endToEnd({ te: 'xtrailers' }).te, undefined, 'a token that only contains "trailers"')
  t.equal(endToEnd({}).te, undefined)
  // Named in Connection (as RFC 9110 asks of a sender of te): the trailers form still survives.
  t.equal(endToEnd({ connection: 'te', te: 'trailers' }).te, 'trailers')
})

t.test('endToEnd returns a fresh object', async (t) => {
  const incoming: IncomingHttpHeaders = { 'x-a': 'a' }
  const out = endToEnd(incoming)
  out['x-b'] = 'b'
  t.same(incoming, { 'x-a': 'a' })
})

t.test('responseHeaders: hop-by-hop and te removed, the rest kept', async (t) => {
  t.same(responseHeaders({ connection: 'keep-alive, x-hop', 'x-hop': '1', 'keep-alive': 'timeout=5', 'transfer-encoding': 'chunked', te: 'trailers', 'content-length': '5', server: 'o' }),
    { 'content-length': '5', server: 'o' })
  t.same(responseHeaders({ ':status': '200', 'grpc-status': '0' } as IncomingHttpHeaders), { 'grpc-status': '0' }, 'HTTP/2 pseudo-headers dropped')
})

t.test('forwarded: x-forwarded-for appended, x-forwarded-proto set only when absent', async (t) => {
  const none: HeaderMap = {}
  forwarded(none, '10.0.0.9')
  t.same(none, { 'x-forwarded-for': '10.0.0.9', 'x-forwarded-proto': 'http' })

  const one: HeaderMap = { 'x-forwarded-for': '1.1.1.1', 'x-forwarded-proto': 'https' }
  forwarded(one, '10.0.0.9')
  t.same(one, { 'x-forwarded-for': '1.1.1.1, 10.0.0.9', 'x-forwarded-proto': 'https' })

  const many: HeaderMap = { 'x-forwarded-for': ['1.1.1.1', '2.2.2.2, 3.3.3.3'] }
  forwarded(many, 'fd00::9')
  t.equal(many['x-forwarded-for'], '1.1.1.1, 2.2.2.2, 3.3.3.3, fd00::9', 'repeated fields joined, then appended')

  const hbone: HeaderMap = { 'x-forwarded-for': '1.1.1.1' }
  forwarded(hbone, undefined)
  t.same(hbone, { 'x-forwarded-for': '1.1.1.1', 'x-forwarded-proto': 'http' }, 'no address: XFF untouched')
  const empty: HeaderMap = {}
  forwarded(empty, '')
  t.equal(empty['x-forwarded-for'], undefined, 'an empty address adds nothing')
})

t.test('requestIds: a valid x-request-id is kept, a missing or unusable one created', async (t) => {
  const kept: HeaderMap = { 'x-request-id': 'abc-123' }
  t.equal(requestIds(kept, false).requestId, 'abc-123')
  t.equal(kept['x-request-id'], 'abc-123')

  const at128: HeaderMap = { 'x-request-id': 'r'.repeat(128) }
  t.equal(requestIds(at128, false).requestId, 'r'.repeat(128), '128 characters is within the bound')

  for (const [what, v] of [['absent', undefined], ['empty', ''], ['too long', 'r'.repeat(129)], ['repeated', ['a', 'b']]] as const) {
    const h: HeaderMap = v === undefined ? {} : { 'x-request-id': v as string | string[] }
    const { requestId } = requestIds(h, false)
    t.match(requestId, UUID, `${what}: a UUID is created`)
    t.equal(h['x-request-id'], requestId, `${what}: and goes upstream`)
  }
  const a = requestIds({}, false).requestId
  const b = requestIds({}, false).requestId
  t.not(a, b, 'each request gets its own')
})

t.test('requestIds: traceparent kept when valid, created only with createTrace', async (t) => {
  const valid: HeaderMap = { traceparent: VALID_TP }
  t.same(requestIds(valid, true).traceId, '4bf92f3577b34da6a3ce929d0e0e4736')
  t.equal(valid.traceparent, VALID_TP, 'unchanged')
  t.equal(requestIds({ traceparent: VALID_TP }, false).traceId, '4bf92f3577b34da6a3ce929d0e0e4736', 'kept without createTrace too')

  const created: HeaderMap = {}
  const ids = requestIds(created, true)
  const m = TRACEPARENT.exec(String(created.traceparent))
  t.ok(m, 'a W3C traceparent is created')
  t.equal(ids.traceId, m?.[1], 'its trace id is returned')

  const off: HeaderMap = {}
  t.equal(requestIds(off, false).traceId, undefined)
  t.notOk('traceparent' in off, 'none created without createTrace')
})

t.test('requestIds: a malformed traceparent is dropped, and replaced only with createTrace', async (t) => {
  const bad = ['00-4BF92F3577B34DA6A3CE929D0E0E4736-00f067aa0ba902b7-01', '00-4bf92f35-00f067aa0ba902b7-01', `${VALID_TP}-extra`, 'garbage']
  for (const tp of bad) {
    const replaced: HeaderMap = { traceparent: tp }
    const ids = requestIds(replaced, true)
    t.not(replaced.traceparent, tp, `${tp}: replaced`)
    t.match(String(replaced.traceparent), TRACEPARENT)
    t.equal(ids.traceId, TRACEPARENT.exec(String(replaced.traceparent))?.[1])

    const dropped: HeaderMap = { traceparent: tp }
    t.same(Object.keys(requestIds(dropped, false)), ['requestId'], `${tp}: no trace id without createTrace`)
    t.notOk('traceparent' in dropped, `${tp}: dropped without createTrace`)
  }
  const repeated: HeaderMap = { traceparent: [VALID_TP, VALID_TP] }
  requestIds(repeated, false)
  t.notOk('traceparent' in repeated, 'a repeated traceparent is malformed')
})

t.test('first', async (t) => {
  t.equal(first('a'), 'a')
  t.equal(first(['a', 'b']), 'a')
  t.equal(first([]), undefined)
  t.equal(first(undefined), undefined)
})
