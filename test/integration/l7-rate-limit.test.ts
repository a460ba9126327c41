// DestinationPolicy rateLimit on the destination host's request path, in process (the real
// InboundHttp and RateLimiter over a LocalHostState, a local origin as the workload): 429
// local_rate_limited with x-hostmesh-ratelimited and retry-after, flag RL, nothing reaching the
// workload; the identity bucket keeping one caller from taking the whole budget; gRPC gets
// RESOURCE_EXHAUSTED; the bucket refills at its rate.
import { FrontMetrics } from '../../daemon/l7/front-metrics.ts'
import { connect as tcpConnect } from 'node:net'
import t from 'tap'
import { LocalHostState } from '../../daemon/limits/host-state.ts'
import { InboundHttp } from '../../daemon/l7/inbound.ts'
import type { InboundConn } from '../../daemon/l7/inbound-conn.ts'
import { DEFAULT_L7_LIMITS } from '../../daemon/l7/limits.ts'
import { RateLimiter } from '../../daemon/l7/rate-limiter.ts'
import { compile, front, h1, h2, h2session, origin, telemetry, V } from './l7-harness.ts'

const o = await origin(t, 'api')
const snapshot = compile([
  `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n`,
  `${V}kind: Workload\nmetadata: {name: api, namespace: t, labels: {app: api}}\nspec: {node: node-a, serviceAccount: api, match: {uid: 5001}, addresses: [127.0.0.1], ports: [{name: http, port: ${o.port}}]}\n`,
  `${V}kind: Service\nmetadata: {name: api, namespace: t}\nspec: {ports: [{name: http, port: 80, protocol: http, targetPort: http}], selector: {app: api}}\n`,
  // 5 per second for the workload port, 3 per second for any one caller.
  `${V}kind: DestinationPolicy\nmetadata: {name: api, namespace: t}\nspec: {targetRefs: [{name: api}], rateLimit: {maxTokens: 5, tokensPerFill: 5, fillInterval: 1s, identity: {maxTokens: 3, tokensPerFill: 3, fillInterval: 1s}}}\n`,
])
const api = snapshot.workloads.get('t/api')!
const tel = telemetry()
const state = new LocalHostState()
const inbound = new InboundHttp({
  snapshot: () => snapshot, log: tel.log, telemetry: tel.requests, connections: tel.connections, front: new FrontMetrics(tel.registry),
  limits: DEFAULT_L7_LIMITS, traceparent: false, limiter: new RateLimiter(state, tel.registry),
  connect: (address, port) => new Promise((resolve, reject) => {
    const s = tcpConnect({ host: address, port }, () => resolve(s))
    s.once('error', reject)
  }),
})
t.teardown(() => inbound.destroy())
const id = (sa: string): string => `spiffe://cluster.local/ns/t/sa/${sa}`
const connOf = (peer: string): InboundConn => ({ listener: 'hbone', workload: api, address: '127.0.0.1', port: o.port, peer, src: { principal: peer }, service: 'api.t' })
const asNoisy = await front(t, (s) => inbound.serve(s, connOf(id('noisy')), 'http'))
const asQuiet = await front(t, (s) => inbound.serve(s, connOf(id('quiet')), 'http'))
const asRpc = await front(t, (s) => inbound.serve(s, connOf(id('rpc')), 'http2'))

t.test('the identity bucket stops a flooding caller at its share; the workload bucket stops the rest', async (t) => {
  const before = o.requests.length
  const noisy = await Promise.all(Array.from({ length: 8 }, (_, i) => h1(asNoisy.port, false, { path: `/n/${i}` })))
  t.equal(noisy.filter((r) => r.status === 200).length, 3, 'the noisy caller gets its 3')
  const refused = noisy.find((r) => r.status === 429)!
  t.equal(refused.body, 'local_rate_limited\n')
  t.equal(refused.headers['x-hostmesh-ratelimited'], 'true')
  t.match(refused.headers['retry-after'], /^[1-9]\d*$/)
  const quiet = await Promise.all(Array.from({ length: 4 }, (_, i) => h1(asQuiet.port, false, { path: `/q/${i}` })))
  t.equal(quiet.filter((r) => r.status === 200).length, 2, 'the quiet caller still gets what is left of the 5')
  t.equal(o.requests.length - before, 5, 'the workload saw exactly the 5 allowed')
  const lines = await tel.accessSince(0, 12)
  t.equal(lines.filter((l) => l.status === 429 && l.responseFlags === 'RL').length, 7, 'every refusal logged with RL')
  t.equal(await tel.requestsTotal({ response_code: '429', response_flags: 'RL' }), 7)
  const metric = await tel.registry.getSingleMetric('hostmesh_rate_limited_total')!.get()
  // noisy: 5 over its own 3; quiet: its 3rd finds the workload's bucket empty, its 4th is over its own 3.
  t.same(Object.fromEntries(metric.values.map((v) => [v.labels.scope, v.value])), { identity: 6, total: 1 })
})

t.test('the buckets refill at their rate; gRPC gets RESOURCE_EXHAUSTED', async (t) => {
  await new Promise((r) => setTimeout(r, 1100))
  t.equal((await h1(asQuiet.port, false, { path: '/again' })).status, 200, 'a second later there are tokens again')
  const s = await h2session(t, asRpc.port)
  const answers = await Promise.all(Array.from({ length: 5 }, () => h2(s, { ':method': 'POST', ':path': '/pkg.Svc/Call', 'content-type': 'application/grpc', te: 'trailers' }, Buffer.alloc(5))))
  const limited = answers.filter((a) => a.headers['grpc-status'] === '8')
  t.ok(limited.length >= 2, `over its 3, the caller gets RESOURCE_EXHAUSTED (${limited.length} of 5)`)
  t.ok(limited.every((a) => a.endStream && Number(a.headers[':status']) === 200), 'as a trailers-only gRPC answer')
  t.ok(state.size >= 3, 'one bucket per caller and one for the workload port')
})
