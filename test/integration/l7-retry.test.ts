// HTTPRoute `retry` and `timeouts.backendRequest` on the source host's request path, in
// process (the real OutboundHttp, a snapshot from the real policy pipeline, two local origins
// as the service's endpoints): which answers and failures are retried, for which methods,
// with which bodies, to which endpoint, within the attempts and the service's retry budget
// (URX when refused), x-hostmesh-attempt-count, hostmesh_retries_total, per-try timeouts.
import { createHash } from 'node:crypto'
import http from 'node:http'
import { createServer } from 'node:net'
import type { AddressInfo } from 'node:net'
import t from 'tap'
import type { Counter } from 'prom-client'
import { until } from '../helpers/admin.ts'
import { compile, front, h1, h2, h2session, origin, outboundHttp, telemetry, V } from './l7-harness.ts'

const flaky = new Map<string, number>()
const a = await origin(t, 'a', flaky)
const b = await origin(t, 'b', flaky)
// A port nobody listens on: connections to it are refused.
const dead = await new Promise<number>((resolve) => {
  const s = createServer()
  s.listen(0, '127.0.0.1', () => {
    const port = (s.address() as AddressInfo).port
    s.close(() => resolve(port))
  })
})
const ep = (port: number): string => `{address: 127.0.0.1, port: ${port}}`
const rule = (name: string, prefix: string, extra: string, backend = 'web', port = 80): string =>
  `    - name: ${name}\n      matches: [{path: {type: PathPrefix, value: ${prefix}}}]\n${extra}      backendRefs: [{name: ${backend}, port: ${port}}]\n`
const snapshot = compile([
  `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n`,
  `${V}kind: Workload\nmetadata: {name: client, namespace: t}\nspec: {node: node-a, serviceAccount: client, match: {uid: 5002}}\n`,
  `${V}kind: Service\nmetadata: {name: web, namespace: t}\nspec: {addresses: [10.96.0.1], ports: [{name: http, port: 80, protocol: http}], endpoints: [${ep(a.port)}, ${ep(b.port)}]}\n`,
  // Outlier detection off: these tests count tries, and an ejection would change where they go.
  `${V}kind: DestinationPolicy\nmetadata: {name: web, namespace: t}\nspec: {targetRefs: [{name: web}], outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 0}, retryBudget: {percent: 100}}\n`,
  `${V}kind: Service\nmetadata: {name: half-dead, namespace: t}\nspec: {ports: [{name: http, port: 80, protocol: http}], endpoints: [${ep(dead)}, ${ep(a.port)}]}\n`,
  `${V}kind: DestinationPolicy\nmetadata: {name: half-dead, namespace: t}\nspec: {targetRefs: [{name: half-dead}], loadBalancer: {type: ROUND_ROBIN}, outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 0}}\n`,
  `${V}kind: Service\nmetadata: {name: stingy, namespace: t}\nspec: {ports: [{name: http, port: 80, protocol: http}], endpoints: [${ep(a.port)}]}\n`,
  `${V}kind: DestinationPolicy\nmetadata: {name: stingy, namespace: t}\nspec: {targetRefs: [{name: stingy}], outlierDetection: {consecutive5xxErrors: 0, consecutiveGatewayErrors: 0}, retryBudget: {percent: 0, minRetriesPerSecond: 1, ttl: 2s}}\n`,
  `${V}kind: Service\nmetadata: {name: nobody, namespace: t}\nspec: {selector: {app: nobody}, ports: [{name: http, port: 80, protocol: http}]}\n`,
  `${V}kind: Service\nmetadata: {name: rpc, namespace: t}\nspec: {addresses: [10.96.0.4], ports: [{name: grpc, port: 9000, protocol: grpc}], endpoints: [${ep(a.port)}]}\n`,
  `${V}kind: HTTPRoute
metadata: {name: web, namespace: t}
spec:
  parentRefs: [{name: web}]
  rules:
${rule('default', '/flaky', '      retry: {attempts: 2, backoff: 1ms}\n')}${rule('any-method', '/post', '      retry: {attempts: 2, backoff: 1ms, allowNonIdempotent: true}\n')}${rule('limit', '/limit', '      retry: {attempts: 2, backoff: 1ms}\n')}${rule('codes', '/codes', '      retry: {attempts: 2, backoff: 1ms, codes: [502]}\n')}${rule('per-try', '/sleepy', '      timeouts: {request: 3s, backendRequest: 150ms}\n      retry: {attempts: 2, backoff: 1ms}\n')}${rule('bounded', '/bounded', '      timeouts: {request: 300ms}\n      retry: {attempts: 10, backoff: 100ms}\n')}${rule('none', '/no-retry', '')}${rule('dead', '/dead', '      retry: {attempts: 1, backoff: 1ms}\n', 'half-dead')}${rule('stingy', '/stingy', '      retry: {attempts: 3, backoff: 1ms}\n', 'stingy')}${rule('nobody', '/nobody', '      retry: {attempts: 3, backoff: 1ms, allowNonIdempotent: true}\n', 'nobody')}`,
  `${V}kind: HTTPRoute
metadata: {name: rpc, namespace: t}
spec:
  parentRefs: [{name: rpc}]
  rules:
${rule('rpc', '/grpc-flaky', '      retry: {attempts: 2, backoff: 1ms}\n', 'rpc', 9000)}${rule('rpc-off', '/grpc-status', '      retry: {attempts: 2, backoff: 1ms, grpcStatuses: [RESOURCE_EXHAUSTED]}\n', 'rpc', 9000)}`,
])
const client = snapshot.workloads.get('t/client')!
const tel = telemetry()
const outbound = outboundHttp(t, () => snapshot, tel)
const web = await front(t, (s) => outbound.serve(s, { source: client, servicePort: 't/web:80', clientAddress: '127.0.0.1', dialled: '10.96.0.1:80' }, 'http'))
const rpc = await front(t, (s) => outbound.serve(s, { source: client, servicePort: 't/rpc:9000', clientAddress: '127.0.0.1', dialled: '10.96.0.4:9000' }, 'grpc'))
const tries = (url: string) => [...a.requests, ...b.requests].filter((r) => r.url === url)
  .sort((x, y) => Number(x.headers['x-hostmesh-attempt-count']) - Number(y.headers['x-hostmesh-attempt-count']))
const retries = async (service: string, result: string): Promise<number> => {
  const m = await (tel.registry.getSingleMetric('hostmesh_retries_total') as Counter).get()
  return m.values.find((v) => v.labels.destination_service === service && v.labels.result === result)?.value ?? 0
}

t.test('a 503 is retried on the other endpoint, with x-hostmesh-attempt-count', async (t) => {
  const mark = tel.access().length
  const before = await retries('web.t', 'success')
  const r = await h1(web.port, false, { path: '/flaky/1/get' })
  t.equal(r.status, 200)
  const seen = tries('/flaky/1/get')
  t.equal(seen.length, 2, 'two tries')
  t.same(seen.map((s) => s.headers['x-hostmesh-attempt-count']), ['1', '2'])
  t.not(a.requests.includes(seen[0]!), a.requests.includes(seen[1]!), 'the retry went to the other endpoint')
  const [line] = await tel.accessSince(mark, 1)
  t.match(line, { status: 200, responseFlags: '-', route: 't/web', ruleName: 'default' })
  t.equal(await retries('web.t', 'success'), before + 1, 'hostmesh_retries_total{result="success"}')
})

t.test('HTTP/2 and HEAD/PUT/DELETE are retried; the default codes are 500, 502, 503, 504', async (t) => {
  const s = await h2session(t, web.port)
  const r = await h2(s, { ':method': 'GET', ':path': '/flaky/2/h2', ':authority': 'web.t' })
  t.equal(r.headers[':status'], 200, 'two 503s, then the answer')
  t.equal(tries('/flaky/2/h2').length, 3)
  for (const method of ['HEAD', 'PUT', 'DELETE']) {
    t.equal((await h1(web.port, false, { method, path: `/flaky/1/${method}` })).status, 200, method)
    t.equal(tries(`/flaky/1/${method}`).length, 2, `${method} tried twice`)
  }
  t.equal((await h1(web.port, false, { path: '/codes/status/503' })).status, 503, 'codes: [502] leaves a 503 alone')
  t.equal(tries('/codes/status/503').length, 1)
})

t.test('POST is not retried unless the rule allows every method', async (t) => {
  t.equal((await h1(web.port, false, { method: 'POST', path: '/flaky/1/post', body: 'x' })).status, 503)
  t.equal(tries('/flaky/1/post').length, 1, 'one try')
  const body = Buffer.alloc(10 * 1024, 7)
  const r = await h1(web.port, false, { method: 'POST', path: '/post/flaky/1/small', body })
  t.equal(r.status, 200, 'allowNonIdempotent: retried')
  const seen = tries('/post/flaky/1/small')
  t.equal(seen.length, 2)
  const sha = createHash('sha256').update(body).digest('hex')
  t.same(seen.map((s) => s.sha256), [sha, sha], 'the body, replayed whole')
})

t.test('a body over 64 KiB streams through once and is not retried', async (t) => {
  const body = Buffer.alloc(100 * 1024, 9)
  const r = await h1(web.port, false, { method: 'POST', path: '/post/flaky/1/big', body })
  t.equal(r.status, 503, 'the first answer, not retried')
  const seen = tries('/post/flaky/1/big')
  t.equal(seen.length, 1)
  t.equal(seen[0]!.bytes, body.length, 'and the body arrived intact')
  t.equal(seen[0]!.sha256, createHash('sha256').update(body).digest('hex'))
})

t.test('past the attempts: the last answer, flag URX, counted as limit', async (t) => {
  const mark = tel.access().length
  const before = await retries('web.t', 'limit')
  const r = await h1(web.port, false, { path: '/limit/status/503' })
  t.equal(r.status, 503)
  t.equal(tries('/limit/status/503').length, 3, 'attempts: 2 is three tries')
  const [line] = await tel.accessSince(mark, 1)
  t.match(line, { status: 503, responseFlags: 'URX' })
  t.equal(await retries('web.t', 'limit'), before + 1)
})

t.test('a connect failure is retried whatever the method', async (t) => {
  const r = await h1(web.port, false, { method: 'POST', path: '/dead/1', body: 'hello' })
  t.equal(r.status, 200, 'the refused endpoint, then the live one')
  t.equal(a.requests.filter((x) => x.url === '/dead/1').length, 1)
  const again = await h1(web.port, false, { method: 'POST', path: '/dead/2', body: 'hello' })
  t.equal(again.status, 200)
})

t.test('the retry budget caps retries, and a refused retry returns the last answer with URX', async (t) => {
  const mark = tel.access().length
  const before = await retries('stingy.t', 'budget_exhausted')
  const statuses: number[] = []
  for (let i = 0; i < 5; i++) statuses.push((await h1(web.port, false, { path: `/stingy/status/503?i=${i}` })).status)
  t.same(statuses, [503, 503, 503, 503, 503])
  const seen = a.requests.filter((x) => x.url.startsWith('/stingy/status/503')).length
  // percent 0 and 1 retry/s over 2 s: the budget has 2 retries for these 5 requests.
  t.equal(seen, 5 + 2, `5 first tries and 2 retries, not 5 × 4: ${seen}`)
  const lines = await tel.accessSince(mark, 5)
  t.ok(lines.filter((l) => String(l.responseFlags).includes('URX')).length >= 4, 'the refused ones are flagged URX')
  t.ok(await retries('stingy.t', 'budget_exhausted') >= before + 4)
})

t.test('backendRequest: a try that takes too long is cancelled and retried', async (t) => {
  const t0 = performance.now()
  const r = await h1(web.port, false, { path: '/sleepy/2000/1/x' })
  const ms = performance.now() - t0
  t.equal(r.status, 200)
  t.ok(ms >= 140 && ms < 1000, `the first try was cut at 150 ms: ${ms.toFixed(0)} ms`)
  const seen = tries('/sleepy/2000/1/x')
  t.equal(seen.length, 2)
  await until(() => seen[0]!.closedEarly === true || seen[0]!.tcp.destroyed, 'the first try to be cancelled', 3000, 10)
  const slow = await h1(web.port, false, { path: '/sleepy/2000/9/y' })
  t.equal(slow.status, 504, 'every try too slow: 504')
  t.equal(tries('/sleepy/2000/9/y').length, 3)
})

t.test('the request timeout bounds the retries and their backoff', async (t) => {
  const mark = tel.access().length
  const t0 = performance.now()
  const r = await h1(web.port, false, { path: '/bounded/status/503' })
  const ms = performance.now() - t0
  t.equal(r.status, 504)
  t.ok(ms >= 290 && ms < 500, `${ms.toFixed(0)} ms`)
  const [line] = await tel.accessSince(mark, 1)
  t.match(line, { status: 504, responseFlags: /UT/ })
})

t.test('gRPC: a trailers-only UNAVAILABLE is retried; a status not asked for is not', async (t) => {
  const s = await h2session(t, rpc.port)
  const r = await h2(s, { ':method': 'POST', ':path': '/grpc-flaky/1/svc.M', ':authority': 'rpc.t', 'content-type': 'application/grpc' }, Buffer.from([0, 0, 0, 0, 0]))
  t.equal(r.headers[':status'], 200)
  t.equal(r.trailers?.['grpc-status'], '0', 'the retry answered OK')
  t.equal(tries('/grpc-flaky/1/svc.M').length, 2, 'POST, yet retried: gRPC retries by status')
  const off = await h2(s, { ':method': 'POST', ':path': '/grpc-status/14', ':authority': 'rpc.t', 'content-type': 'application/grpc' }, Buffer.from([0, 0, 0, 0, 0]))
  t.equal(off.headers['grpc-status'], '14')
  t.equal(tries('/grpc-status/14').length, 1, 'grpcStatuses: [RESOURCE_EXHAUSTED] leaves UNAVAILABLE alone')
})

t.test('no retry policy: one try', async (t) => {
  t.equal((await h1(web.port, false, { path: '/no-retry/status/503' })).status, 503)
  t.equal(tries('/no-retry/status/503').length, 1)
  t.same(tries('/no-retry/status/503')[0]!.headers['x-hostmesh-attempt-count'], '1')
})

t.test('a body held for retries but answered locally (no endpoint) leaves the keep-alive connection usable', async (t) => {
  const agent = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => agent.destroy())
  const refused = await h1(web.port, agent, { method: 'POST', path: '/nobody/1', body: Buffer.alloc(4096, 1) })
  t.equal(refused.status, 503)
  const next = await h1(web.port, agent, { method: 'POST', path: '/post/after-local', body: 'abc' })
  t.equal(next.status, 200, 'the next request on the same connection is read and answered')
  t.equal(next.localPort, refused.localPort, 'on the same connection')
})
