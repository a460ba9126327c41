// The circuit breakers' resources (requests, connections, pending) are separate counts per
// destination service; each has its own hostmesh_circuit_breaker_open series, set while it is
// at its limit, and its own hostmesh_circuit_breaker_overflow_total series.
import { Registry } from 'prom-client'
import t from 'tap'
import { CircuitBreakers } from '../../../daemon/limits/circuit-breaker.ts'
import { LocalHostState } from '../../../daemon/limits/host-state.ts'

async function sample(registry: Registry, name: string, labels: Record<string, string>): Promise<number | undefined> {
  const m = await registry.getSingleMetric(name)?.get()
  return m?.values.find((v) => Object.entries(labels).every(([k, x]) => v.labels[k] === x))?.value
}

t.test('connections: up to the limit, then refused and counted; the gauge follows the limit both ways', async (t) => {
  const registry = new Registry()
  const b = new CircuitBreakers(new LocalHostState(), registry)
  const labels = { destination_service: 'api.shop', resource: 'connections' }
  const first = b.acquire('api.shop', 'connections', 2)
  t.ok(first)
  t.equal(await sample(registry, 'hostmesh_circuit_breaker_open', labels), undefined, 'below the limit: no series yet')
  const second = b.acquire('api.shop', 'connections', 2)
  t.ok(second)
  t.equal(await sample(registry, 'hostmesh_circuit_breaker_open', labels), 1, 'at the limit: open')
  t.equal(b.acquire('api.shop', 'connections', 2), undefined, 'over the limit: refused')
  t.equal(b.acquire('api.shop', 'connections', 2), undefined)
  t.equal(await sample(registry, 'hostmesh_circuit_breaker_overflow_total', labels), 2)
  second!()
  t.equal(await sample(registry, 'hostmesh_circuit_breaker_open', labels), 0, 'one released: closed')
  second!()
  t.ok(b.acquire('api.shop', 'connections', 2), 'a double release frees one slot only: one more fits')
  t.equal(b.acquire('api.shop', 'connections', 2), undefined, 'and no second one')
})

t.test('each resource and each service has its own count', async (t) => {
  const registry = new Registry()
  const b = new CircuitBreakers(new LocalHostState(), registry)
  t.ok(b.acquire('api.shop', 'connections', 1))
  t.equal(b.acquire('api.shop', 'connections', 1), undefined)
  t.ok(b.acquire('api.shop', 'requests', 1), 'requests are counted apart from connections')
  t.ok(b.acquire('api.shop', 'pending', 1), 'and pending apart from both')
  t.equal(b.acquire('api.shop', 'pending', 1), undefined)
  t.ok(b.acquire('web.shop', 'connections', 1), 'another service has its own count')
  t.equal(await sample(registry, 'hostmesh_circuit_breaker_overflow_total', { destination_service: 'api.shop', resource: 'connections' }), 1)
  t.equal(await sample(registry, 'hostmesh_circuit_breaker_overflow_total', { destination_service: 'api.shop', resource: 'pending' }), 1)
  t.equal(await sample(registry, 'hostmesh_circuit_breaker_overflow_total', { destination_service: 'web.shop', resource: 'connections' }), undefined)
  t.equal(await sample(registry, 'hostmesh_circuit_breaker_open', { destination_service: 'api.shop', resource: 'requests' }), 1)
})

t.test('two breaker sets on one registry and one host state share the metrics and the counts', async (t) => {
  const registry = new Registry()
  const state = new LocalHostState()
  const a = new CircuitBreakers(state, registry)
  const b = new CircuitBreakers(state, registry)
  t.ok(a.acquire('api.shop', 'connections', 1))
  t.equal(b.acquire('api.shop', 'connections', 1), undefined, 'the limit holds for the host')
  t.equal(await sample(registry, 'hostmesh_circuit_breaker_overflow_total', { destination_service: 'api.shop', resource: 'connections' }), 1)
})
