// #13's first stages on the source host's request path, in process (the real OutboundHttp, a
// snapshot from the real policy pipeline, local origins as explicit endpoints): HTTPRoute
// `timeouts` (504 UT before the response, a reset after it, the upstream request cancelled,
// gRPC's grpc-timeout and DEADLINE_EXCEEDED), the Fault filter (abort FI, delay DI, both
// per request at their percentage, a delay counting against the request timeout) and the
// circuit breaker (maxRequests: 503 UO at once, never a queue).
import { connect as tcpConnect } from 'node:net'
import t from 'tap'
import { until } from '../helpers/admin.ts'
import { compile, front, h1, h2, h2session, origin, outboundHttp, telemetry, V, within } from './l7-harness.ts'

const a = await origin(t, 'a')
const svc = `${V}kind: Service\nmetadata: {name: a, namespace: t}\nspec: {ports: [{name: http, port: 80, protocol: http}], endpoints: [{address: 127.0.0.1, port: ${a.port}}]}\n`
const rule = (name: string, prefix: string, extra: string): string => `    - name: ${name}\n      matches: [{path: {type: PathPrefix, value: ${prefix}}}]\n${extra}      backendRefs: [{name: a, port: 80}]\n`
const snapshot = compile([
  `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n`,
  `${V}kind: Workload\nmetadata: {name: client, namespace: t}\nspec: {node: node-a, serviceAccount: client, match: {uid: 5002}}\n`,
  svc,
  `${V}kind: Service\nmetadata: {name: narrow, namespace: t}\nspec: {ports: [{name: http, port: 80, protocol: http}], endpoints: [{address: 127.0.0.1, port: ${a.port}}]}\n`,
  `${V}kind: DestinationPolicy\nmetadata: {name: narrow, namespace: t}\nspec: {targetRefs: [{name: narrow}], connectionPool: {maxRequests: 3}}\n`,
  `${V}kind: Service\nmetadata: {name: web, namespace: t}\nspec: {addresses: [10.96.0.1], ports: [{name: http, port: 80, protocol: http}], endpoints: [{address: 127.0.0.1, port: ${a.port}}]}\n`,
  `${V}kind: Service\nmetadata: {name: rpc, namespace: t}\nspec: {addresses: [10.96.0.4], ports: [{name: grpc, port: 9000, protocol: grpc}], endpoints: [{address: 127.0.0.1, port: ${a.port}}]}\n`,
  `${V}kind: HTTPRoute
metadata: {name: web, namespace: t}
spec:
  parentRefs: [{name: web}]
  rules:
${rule('request-timeout', '/gate/request', '      timeouts: {request: 300ms}\n')}${rule('backend-timeout', '/gate/backend', '      timeouts: {backendRequest: 200ms}\n')}${rule('no-timeout', '/gate/none', '      timeouts: {request: 0s}\n')}${rule('slow-body', '/slow/body', '      timeouts: {request: 300ms}\n')}${rule('hints', '/hints', '')}${rule('abort', '/fault/abort', '      filters: [{type: Fault, fault: {abort: {httpStatus: 418}}}]\n')}${rule('delay', '/fault/delay', '      filters: [{type: Fault, fault: {delay: {fixedDelay: 200ms}}}]\n')}${rule('delay-timeout', '/gate/delayed', '      filters: [{type: Fault, fault: {delay: {fixedDelay: 2s}}}]\n      timeouts: {request: 250ms}\n')}    - name: breaker\n      matches: [{path: {type: PathPrefix, value: /gate/breaker}}]\n      backendRefs: [{name: narrow, port: 80}]\n    - name: delayed-narrow\n      matches: [{path: {type: PathPrefix, value: /narrow/delayed}}]\n      filters: [{type: Fault, fault: {delay: {fixedDelay: 300ms}}}]\n      backendRefs: [{name: narrow, port: 80}]\n${rule('ten-percent', '/fault/ten', '      filters: [{type: Fault, fault: {abort: {httpStatus: 503, percent: 10}, delay: {fixedDelay: 1ms, percent: 10}}}]\n')}`,
  `${V}kind: HTTPRoute
metadata: {name: rpc, namespace: t}
spec:
  parentRefs: [{name: rpc}]
  rules:
${rule('rpc', '/gate.Svc', '      timeouts: {request: 2s}\n')}${rule('rpc-abort', '/fault.Svc', '      filters: [{type: Fault, fault: {abort: {httpStatus: 503}}}]\n')}`,
])
const client = snapshot.workloads.get('t/client')!
const tel = telemetry()
const outbound = outboundHttp(t, () => snapshot, tel)
const web = await front(t, (s) => outbound.serve(s, { source: client, servicePort: 't/web:80', clientAddress: '127.0.0.1', dialled: '10.96.0.1:80' }, 'http'))
const rpc = await front(t, (s) => outbound.serve(s, { source: client, servicePort: 't/rpc:9000', clientAddress: '127.0.0.1', dialled: '10.96.0.4:9000' }, 'grpc'))
const seen = (path: string) => a.requests.filter((r) => r.url === path)

t.test('request timeout: 504 UT in time, and the upstream request is cancelled', async (t) => {
  const mark = tel.access().length
  const t0 = performance.now()
  const r = await h1(web.port, false, { path: '/gate/request/1' })
  const ms = performance.now() - t0
  t.equal(r.status, 504)
  t.equal(r.body, 'upstream request timeout\n')
  t.ok(ms >= 290 && ms < 330 + 200, `within 10% of 300 ms (plus scheduling): ${ms.toFixed(0)} ms`)
  await until(() => seen('/gate/request/1')[0]?.closedEarly === true || seen('/gate/request/1')[0]?.tcp.destroyed === true, 'the origin to see its request cancelled', 3000, 10)
  const [line] = await tel.accessSince(mark, 1)
  t.match(line, { status: 504, responseFlags: 'UT', error: /timeout/ })
})

t.test('backendRequest bounds the try; 0s disables the bound', async (t) => {
  const t0 = performance.now()
  t.equal((await h1(web.port, false, { path: '/gate/backend/1' })).status, 504)
  const ms = performance.now() - t0
  t.ok(ms >= 190 && ms < 420, `about 200 ms: ${ms.toFixed(0)}`)
  const pending = h1(web.port, false, { path: '/gate/none/1' })
  await until(() => seen('/gate/none/1').length === 1, 'the unbounded request to reach the origin', 3000, 10)
  await new Promise((r) => setTimeout(r, 400))
  a.release()
  t.equal((await pending).status, 200, 'with 0s it waits as long as the origin takes')
})

t.test('after the response has started, the timeout resets the client\'s connection', async (t) => {
  const mark = tel.access().length
  const got = await within(new Promise<{ status: number; error: string }>((resolve) => {
    const s = tcpConnect({ host: '127.0.0.1', port: web.port }, () => s.write('GET /slow/body HTTP/1.1\r\nhost: web.t\r\n\r\n'))
    let text = ''
    s.on('data', (c: Buffer) => { text += c.toString('latin1') })
    s.on('close', () => resolve({ status: Number(/^HTTP\/1\.1 (\d{3})/.exec(text)?.[1] ?? 0), error: text.includes('0\r\n\r\n') ? 'complete' : 'cut' }))
    s.on('error', () => undefined)
  }), 3000, 'the cut response')
  t.equal(got.status, 200, 'the head had gone out')
  t.equal(got.error, 'cut', 'the body never completes: the connection is reset')
  const [line] = await tel.accessSince(mark, 1)
  t.match(line, { status: 200, responseFlags: /UT/ })
})

t.test('Fault: abort (FI) never reaches the origin; delay (DI) waits; a delay counts against the timeout', async (t) => {
  const mark = tel.access().length
  const before = a.requests.length
  const r = await h1(web.port, false, { path: '/fault/abort' })
  t.equal(r.status, 418)
  t.equal(a.requests.length, before, 'the origin saw nothing')
  const t0 = performance.now()
  t.equal((await h1(web.port, false, { path: '/fault/delay' })).status, 200)
  t.ok(performance.now() - t0 >= 195, 'delayed by the fixed delay')
  const t1 = performance.now()
  const timedOut = await h1(web.port, false, { path: '/gate/delayed' })
  const ms = performance.now() - t1
  t.equal(timedOut.status, 504, 'the 2 s delay is cut at the 250 ms request timeout')
  t.ok(ms < 600, `${ms.toFixed(0)} ms`)
  t.equal(seen('/gate/delayed').length, 0, 'and the request never went upstream')
  const lines = await tel.accessSince(mark, 3)
  t.match(lines, [{ status: 418, responseFlags: 'FI' }, { status: 200, responseFlags: 'DI' }, { status: 504, responseFlags: 'UT,DI' }])
})

t.test('Fault at 10%: abort and delay each land within statistical bounds over 2,000 requests', async (t) => {
  const mark = tel.access().length
  const statuses: number[] = []
  for (let i = 0; i < 2000; i += 50) {
    const batch = await Promise.all(Array.from({ length: 50 }, (_, j) => h1(web.port, false, { path: `/fault/ten/${i + j}` })))
    for (const r of batch) statuses.push(r.status)
  }
  const aborted = statuses.filter((s) => s === 503).length
  // Binomial(2000, 0.1): sd 13.4; ±5 sd.
  t.ok(aborted >= 133 && aborted <= 267, `aborts: ${aborted} of 2000`)
  const lines = await tel.accessSince(mark, 2000, 10_000)
  const delayed = lines.filter((l) => String(l.responseFlags).includes('DI')).length
  t.ok(delayed >= 133 && delayed <= 267, `delays: ${delayed} of 2000`)
  t.equal(lines.filter((l) => l.responseFlags === 'FI' || l.responseFlags === 'DI,FI').length, aborted, 'every abort is flagged FI')
})

t.test('gRPC: grpc-timeout shortens the route\'s timeout, DEADLINE_EXCEEDED; a fault abort is UNAVAILABLE', async (t) => {
  const s = await h2session(t, rpc.port)
  const t0 = performance.now()
  const r = await h2(s, { ':method': 'POST', ':path': '/gate.Svc/Call', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '150m' }, Buffer.alloc(5))
  const ms = performance.now() - t0
  t.equal(r.headers[':status'], 200)
  t.equal(r.headers['grpc-status'], '4', 'DEADLINE_EXCEEDED')
  t.ok(r.endStream, 'trailers-only')
  t.ok(ms >= 140 && ms < 600, `at the client's 150 ms, not the route's 2 s: ${ms.toFixed(0)} ms`)
  const f = await h2(s, { ':method': 'POST', ':path': '/fault.Svc/Call', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.alloc(5))
  t.equal(f.headers['grpc-status'], '14', 'a 503 abort is UNAVAILABLE')
  const long = h2(s, { ':method': 'POST', ':path': '/gate.Svc/Long', 'content-type': 'application/grpc', te: 'trailers', 'grpc-timeout': '1H' }, Buffer.alloc(5))
  await until(() => seen('/gate.Svc/Long').length === 1, 'the call to reach the origin', 3000, 10)
  const t1 = performance.now()
  t.equal((await long).headers['grpc-status'], '4', 'a longer grpc-timeout does not lengthen the route\'s 2 s')
  t.ok(performance.now() - t1 < 2500)
})

t.test('circuit breaker: past maxRequests a request gets 503 UO at once; the origin never sees more than the limit', async (t) => {
  const mark = tel.access().length
  const pending = Array.from({ length: 10 }, (_, i) => h1(web.port, false, { path: `/gate/breaker/${i}` }))
  await until(() => a.requests.filter((r) => r.url.startsWith('/gate/breaker/')).length === 3, 'three requests to reach the origin', 3000, 10)
  const overflowed = await tel.accessSince(mark, 7)
  t.equal(overflowed.filter((l) => l.status === 503 && l.responseFlags === 'UO').length, 7, 'the other seven were answered at once')
  t.equal(a.requests.filter((r) => r.url.startsWith('/gate/breaker/')).length, 3, 'the origin saw only the three')
  const metrics = await tel.registry.metrics()
  t.match(metrics, /hostmesh_circuit_breaker_open\{destination_service="narrow\.t",resource="requests"\} 1/)
  t.match(metrics, /hostmesh_circuit_breaker_overflow_total\{destination_service="narrow\.t",resource="requests"\} 7/)
  a.release()
  const answers = await Promise.all(pending)
  t.same(answers.map((r) => r.status).sort(), [200, 200, 200, 503, 503, 503, 503, 503, 503, 503])
  const refused = answers.find((r) => r.status === 503)!
  t.equal(refused.headers['x-hostmesh-overloaded'], 'true')
  t.equal(refused.body, 'upstream overflow\n')
  t.match(await tel.registry.metrics(), /hostmesh_circuit_breaker_open\{destination_service="narrow\.t",resource="requests"\} 0/, 'closed again once the requests are done')
  const after = h1(web.port, false, { path: '/gate/breaker/after' })
  await until(() => seen('/gate/breaker/after').length === 1, 'the next request to reach the origin', 3000, 10)
  a.release()
  t.equal((await after).status, 200, 'and the next request goes through')
})

t.test('a client that leaves during a fault delay: its request never goes upstream, and its breaker slot comes back', async (t) => {
  const mark = tel.access().length
  const gone = Array.from({ length: 3 }, () => new Promise<void>((resolve) => {
    const s = tcpConnect({ host: '127.0.0.1', port: web.port }, () => s.write('GET /narrow/delayed/gone HTTP/1.1\r\nhost: web.t\r\n\r\n'))
    s.on('error', () => undefined)
    setTimeout(() => { s.destroy(); resolve() }, 50)
  }))
  await Promise.all(gone)
  const lines = await tel.accessSince(mark, 3)
  t.ok(lines.every((l) => l.status === 0 && /\bDC\b/.test(String(l.responseFlags)) && /\bDI\b/.test(String(l.responseFlags))), `each logged once, status 0 with DI and DC: ${JSON.stringify(lines.map((l) => [l.status, l.responseFlags]))}`)
  await new Promise((r) => setTimeout(r, 400))
  t.equal(seen('/narrow/delayed/gone').length, 0, 'none of them reached the origin')
  const r = await h1(web.port, false, { path: '/narrow/delayed/ok' })
  t.equal(r.status, 200, 'the three slots of maxRequests: 3 came back')
})

t.test('an interim 103 from the upstream is not the answer: the client gets the final 200 and its body', async (t) => {
  const r = await h1(web.port, false, { path: '/hints/early' })
  t.equal(r.status, 200)
  t.match(r.body, /"url":"\/hints\/early"/)
})
