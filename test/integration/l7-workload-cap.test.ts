// outbound.maxRequestsPerWorkload on the source host's request path, in process (the real
// OutboundHttp, a snapshot from the real policy pipeline, a local origin): a workload with 2
// requests in flight gets 503 UO with x-hostmesh-overloaded for a third at once, before any
// route or upstream work (the origin never sees it); another workload on the same host is not
// affected; once the two finish, the workload's slots are back.
import t from 'tap'
import type { Counter } from 'prom-client'
import { until } from '../helpers/admin.ts'
import { compile, front, h1, origin, outboundHttp, telemetry, tcpEndpoint, V } from './l7-harness.ts'

const a = await origin(t, 'a')
const snapshot = compile([
  `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n`,
  `${V}kind: Workload\nmetadata: {name: runaway, namespace: t}\nspec: {node: node-a, serviceAccount: runaway, match: {uid: 5002}}\n`,
  `${V}kind: Workload\nmetadata: {name: quiet, namespace: t}\nspec: {node: node-a, serviceAccount: quiet, match: {uid: 5003}}\n`,
  `${V}kind: Service\nmetadata: {name: api, namespace: t}\nspec: {addresses: [10.96.0.1], ports: [{name: http, port: 80, protocol: http}], endpoints: [{address: 127.0.0.1, port: ${a.port}}]}\n`,
])
const tel = telemetry()
const outbound = outboundHttp(t, () => snapshot, tel, tcpEndpoint, { maxConnectionsPerWorkload: 100, maxRequestsPerWorkload: 2 })
const listen = (name: string) => front(t, (s) => outbound.serve(s, { source: snapshot.workloads.get(`t/${name}`)!, servicePort: 't/api:80', clientAddress: '127.0.0.1', dialled: '10.96.0.1:80' }, 'http'))
const runaway = await listen('runaway')
const quiet = await listen('quiet')
const refused = async (): Promise<number> => {
  const m = await (tel.registry.getSingleMetric('hostmesh_workload_limit_refused_total') as Counter).get()
  return m.values.find((v) => v.labels.workload === 't/runaway' && v.labels.resource === 'requests')?.value ?? 0
}

t.test('a third request in flight: 503 UO at once, never at the origin; others unaffected', async (t) => {
  const mark = tel.access().length
  const held = [h1(runaway.port, false, { path: '/gate/1' }), h1(runaway.port, false, { path: '/gate/2' })]
  await until(() => a.seen('/gate/').length === 2, 'two requests held at the origin', 3000, 10)
  const third = await h1(runaway.port, false, { path: '/over' })
  t.equal(third.status, 503)
  t.equal(third.headers['x-hostmesh-overloaded'], 'true')
  t.equal(a.seen('/over').length, 0, 'the origin never saw it')
  t.equal(await refused(), 1, 'counted for the workload')
  const other = h1(quiet.port, false, { path: '/gate/quiet' })
  await until(() => a.seen('/gate/quiet').length === 1, 'the other workload\'s request reached the origin', 3000, 10)
  a.release()
  t.same((await Promise.all([...held, other])).map((r) => r.status), [200, 200, 200])
  const lines = await tel.accessSince(mark, 4)
  t.ok(lines.some((l) => l.status === 503 && l.responseFlags === 'UO' && String(l.error).includes('maxRequestsPerWorkload')), 'logged with UO and the reason')
  t.equal((await h1(runaway.port, false, { path: '/after' })).status, 200, 'the slots came back')
})
