// DestinationPolicy connectionPool.maxConnections and maxPendingRequests on the source host's
// request path, in process (the real OutboundHttp and pools, a snapshot from the real policy
// pipeline, a local origin): the upstream connections the pools open to a service stay within
// maxConnections, requests waiting for a connection within maxPendingRequests; past either the
// client gets 503 UO with x-hostmesh-overloaded at once, and nothing queues.
import t from 'tap'
import type { Counter } from 'prom-client'
import { until } from '../helpers/admin.ts'
import { compile, front, h1, origin, outboundHttp, tcpEndpoint, telemetry, V } from './l7-harness.ts'

const a = await origin(t, 'a')
const slow = await origin(t, 'slow')
const snapshot = compile([
  `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n`,
  `${V}kind: Workload\nmetadata: {name: client, namespace: t}\nspec: {node: node-a, serviceAccount: client, match: {uid: 5002}}\n`,
  `${V}kind: Service\nmetadata: {name: few, namespace: t}\nspec: {addresses: [10.96.0.1], ports: [{name: http, port: 80, protocol: http}], endpoints: [{address: 127.0.0.1, port: ${a.port}}]}\n`,
  `${V}kind: DestinationPolicy\nmetadata: {name: few, namespace: t}\nspec: {targetRefs: [{name: few}], connectionPool: {maxConnections: 2}}\n`,
  `${V}kind: Service\nmetadata: {name: waits, namespace: t}\nspec: {addresses: [10.96.0.2], ports: [{name: http, port: 80, protocol: http}], endpoints: [{address: 127.0.0.1, port: ${slow.port}}]}\n`,
  `${V}kind: DestinationPolicy\nmetadata: {name: waits, namespace: t}\nspec: {targetRefs: [{name: waits}], connectionPool: {maxPendingRequests: 1}}\n`,
])
const client = snapshot.workloads.get('t/client')!
const tel = telemetry()
// Connections to `slow` take 300 ms to open: its requests wait for them.
const outbound = outboundHttp(t, () => snapshot, tel, (source, e) => e.port === slow.port
  ? new Promise((resolve) => setTimeout(resolve, 300)).then(() => tcpEndpoint(source, e))
  : tcpEndpoint(source, e))
const few = await front(t, (s) => outbound.serve(s, { source: client, servicePort: 't/few:80', clientAddress: '127.0.0.1', dialled: '10.96.0.1:80' }, 'http'))
const waits = await front(t, (s) => outbound.serve(s, { source: client, servicePort: 't/waits:80', clientAddress: '127.0.0.1', dialled: '10.96.0.2:80' }, 'http'))
const overflows = async (service: string, resource: string): Promise<number> => {
  const m = await (tel.registry.getSingleMetric('hostmesh_circuit_breaker_overflow_total') as Counter).get()
  return m.values.find((v) => v.labels.destination_service === service && v.labels.resource === resource)?.value ?? 0
}

t.test('maxConnections: the pools open at most 2 upstream connections; the third request gets 503 UO at once', async (t) => {
  const mark = tel.access().length
  const held = [h1(few.port, false, { path: '/gate/1' }), h1(few.port, false, { path: '/gate/2' })]
  await until(() => a.seen('/gate/').length === 2, 'two requests held at the origin', 3000, 10)
  const t0 = performance.now()
  const third = await h1(few.port, false, { path: '/gate/3' })
  t.equal(third.status, 503)
  t.equal(third.headers['x-hostmesh-overloaded'], 'true')
  t.ok(performance.now() - t0 < 200, 'at once')
  t.equal(a.open.size, 2, 'the origin holds two connections, no more')
  t.equal(await overflows('few.t', 'connections'), 1)
  a.release()
  t.same((await Promise.all(held)).map((r) => r.status), [200, 200])
  const lines = await tel.accessSince(mark, 3)
  t.ok(lines.some((l) => l.status === 503 && l.responseFlags === 'UO'), 'logged with UO')
  t.equal((await h1(few.port, false, { path: '/after' })).status, 200, 'a pooled connection serves the next request')
})

t.test('maxPendingRequests: one request may wait for a connection; the next gets 503 UO at once', async (t) => {
  const first = h1(waits.port, false, { path: '/p/1' })
  await new Promise((r) => setTimeout(r, 50))
  const t0 = performance.now()
  const second = await h1(waits.port, false, { path: '/p/2' })
  t.equal(second.status, 503, 'over maxPendingRequests while the first waits for its connection')
  t.equal(second.headers['x-hostmesh-overloaded'], 'true')
  t.ok(performance.now() - t0 < 200, 'at once')
  t.equal((await first).status, 200, 'the waiting one goes through')
  t.equal(await overflows('waits.t', 'pending'), 1)
  t.equal((await h1(waits.port, false, { path: '/p/3' })).status, 200, 'with the connection open, nothing waits')
})
