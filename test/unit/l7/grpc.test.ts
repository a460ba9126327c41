// gRPC's view of hostmesh's own answers: which requests are gRPC (Envoy's test: the
// content-type is application/grpc, alone or followed by '+' or ';'), the HTTP-to-gRPC status
// table (grpc doc/http-grpc-status-mapping.md, and UT as DEADLINE_EXCEEDED), and grpc-message
// in gRPC's Percent-Encoded form.
import t from 'tap'
import { GRPC, grpcMessage, grpcStatusOf, isGrpc } from '../../../daemon/l7/grpc.ts'

t.test('isGrpc', async (t) => {
  for (const ct of ['application/grpc', 'application/grpc+proto', 'application/grpc+json', 'application/grpc;charset=utf-8']) t.ok(isGrpc(ct), ct)
  t.ok(isGrpc(['application/grpc', 'text/plain']), 'a repeated field: the first value')
  for (const ct of ['application/grpc-web', 'application/grpc-web+proto', 'application/grpcx', 'application/json', 'text/plain', '']) t.notOk(isGrpc(ct), ct || '(empty)')
  t.notOk(isGrpc(['text/plain', 'application/grpc']), 'only the first of repeated values counts')
  t.notOk(isGrpc([]))
  t.notOk(isGrpc(undefined))
})

t.test('grpcStatusOf: gRPC\'s HTTP-to-status table', async (t) => {
  const table: Array<[number, number]> = [
    [400, GRPC.INTERNAL], [401, GRPC.UNAUTHENTICATED], [403, GRPC.PERMISSION_DENIED], [404, GRPC.UNIMPLEMENTED],
    [429, GRPC.UNAVAILABLE], [502, GRPC.UNAVAILABLE], [503, GRPC.UNAVAILABLE], [504, GRPC.UNAVAILABLE],
    [405, GRPC.UNKNOWN], [431, GRPC.UNKNOWN], [500, GRPC.UNKNOWN], [301, GRPC.UNKNOWN], [200, GRPC.UNKNOWN],
  ]
  for (const [http, grpc] of table) t.equal(grpcStatusOf(http), grpc, `${http} → ${grpc}`)
  t.same([GRPC.INTERNAL, GRPC.UNAUTHENTICATED, GRPC.PERMISSION_DENIED, GRPC.UNIMPLEMENTED, GRPC.UNAVAILABLE, GRPC.UNKNOWN, GRPC.DEADLINE_EXCEEDED], [13, 16, 7, 12, 14, 2, 4], 'the codes are gRPC\'s')
})

t.test('grpcStatusOf: a timeout (UT) is DEADLINE_EXCEEDED whatever the HTTP status', async (t) => {
  t.equal(grpcStatusOf(504, 'UT'), GRPC.DEADLINE_EXCEEDED)
  t.equal(grpcStatusOf(503, 'UT'), GRPC.DEADLINE_EXCEEDED)
  t.equal(grpcStatusOf(503, 'UF'), GRPC.UNAVAILABLE, 'other flags do not change the table')
  t.equal(grpcStatusOf(403, 'UAEX'), GRPC.PERMISSION_DENIED)
  t.equal(grpcStatusOf(404, 'NR'), GRPC.UNIMPLEMENTED)
})

t.test('grpcMessage: visible ASCII except % kept, every other byte percent-encoded', async (t) => {
  t.equal(grpcMessage(''), '')
  t.equal(grpcMessage('no route: ns/web:80 is gone'), 'no route: ns/web:80 is gone', "':' and '/' are kept (grpc-js decodes with decodeURI)")
  t.equal(grpcMessage('~ !"#'), '~ !"#')
  t.equal(grpcMessage('100%'), '100%25')
  t.equal(grpcMessage('a\nb\tc\r'), 'a%0Ab%09c%0D')
  t.equal(grpcMessage('\x7f\x00'), '%7F%00')
  t.equal(grpcMessage('é€'), '%C3%A9%E2%82%AC', 'UTF-8 bytes, uppercase hex')
  for (const s of ['RBAC: access denied', 'x%y\nz', 'ünïcödé / 100%']) t.equal(decodeURIComponent(grpcMessage(s)), s, `${JSON.stringify(s)} decodes back`)
})

t.test('grpcMessage is bounded: 256 characters of input at most', async (t) => {
  t.equal(grpcMessage('x'.repeat(10_000)), 'x'.repeat(256))
  const wide = grpcMessage('é'.repeat(1000))
  t.equal(wide, '%C3%A9'.repeat(256), 'multi-byte characters: 256 of them, encoded')
  t.ok(wide.length <= 256 * 4 * 3, 'never more than 3 characters per byte of 256 four-byte characters')
})
