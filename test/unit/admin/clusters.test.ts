// The /clusters view of the example policy (compiled for node-a) over a Balancer that has
// carried connections and requests, failed connects and requests and ejected an endpoint, with
// a fake clock; and over live circuit breakers and a retry budget.
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Registry } from 'prom-client'
import t from 'tap'
import { clustersView, type ClusterView, type ServiceCounts } from '../../../daemon/admin/clusters.ts'
import { Balancer } from '../../../daemon/balance/balancer.ts'
import { CircuitBreakers } from '../../../daemon/limits/circuit-breaker.ts'
import { LocalHostState } from '../../../daemon/limits/host-state.ts'
import { loadPolicy } from '../../../policy/pipeline.ts'
import type { Snapshot } from '../../../policy/snapshot.ts'

const EXAMPLES = new URL('../../../policy/examples/', import.meta.url).pathname
// A service over both payments versions with no route, so one endpoint can be ejected while
// the other stays (outlier detection never ejects the last healthy one).
const LEDGER_ALL = `apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: ledger-all, namespace: shop}
spec: {addresses: [10.96.0.50, "fd96::50"], ports: [{name: ledger, port: 7000, protocol: tcp}], selector: {app: payments}}
`

/** Breakers with nothing in use, and no retry budget known. */
const idle = (): ServiceCounts => ({ breakers: new CircuitBreakers(new LocalHostState(), new Registry()) })

async function examples(): Promise<Snapshot> {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-clusters-'))
  cpSync(EXAMPLES, dir, { recursive: true })
  writeFileSync(join(dir, '60-ledger-all.yaml'), LEDGER_ALL)
  const r = await loadPolicy(dir, { generation: 7, trustDomain: 'cluster.local', localNode: 'node-a' })
  if (!r.ok) throw new Error(r.problems.map((p) => p.message).join('; '))
  return r.snapshot
}

t.test('every service port is a cluster with its settings, route and hosts', async (t) => {
  const snap = await examples()
  const view = clustersView(snap, new Balancer(), idle())
  t.equal(view.generation, 7)
  t.same(view.clusters.map((c) => c.name), [...snap.servicePorts.keys()].sort(), 'one per service port, by name')
  const byName = new Map(view.clusters.map((c) => [c.name, c]))
  t.match(byName.get('shop/payments:7000'), {
    service: 'payments.shop', port: 7000, portName: 'ledger', protocol: 'tcp', addresses: ['10.96.0.20:7000', '[fd96::20]:7000'],
    route: { kind: 'tcp', name: /ledger/, backends: [{ cluster: 'shop/payments-v1:7000', weight: 90 }, { cluster: 'shop/payments-v2:7000', weight: 10 }] },
  })
  t.match(byName.get('shop/payments:80'), { protocol: 'http', route: { kind: 'http', rules: 2 } })
  t.match(byName.get('shop/payments-v1:7000'), {
    addresses: [], route: null, loadBalancer: 'P2C_EWMA', destinationPolicy: 'default',
    hosts: [{ address: '10.77.0.12:7000', workload: 'shop/payments-v1', identity: 'spiffe://cluster.local/ns/shop/sa/payments', node: 'node-b', health: 'HEALTHY', connects: 0, ewmaConnectMs: null, requestEwmaMs: null, pending: 0 }],
  })
  t.match(byName.get('shop/fraud:80'), { loadBalancer: 'LEAST_REQUEST', destinationPolicy: /fraud/, outlierDetection: { consecutive5xxErrors: 3, maxEjectionPercent: 50 } })
  t.match(byName.get('shop/card-network:443'), { external: true, hosts: [{ address: '10.77.0.13:9443', workload: null, identity: null, node: null }] })
  t.same(clustersView(undefined, new Balancer(), idle()), { generation: 0, clusters: [], otherConnections: [] }, 'no policy yet')
})

t.test('after traffic and an ejection: open connections per cluster and host, connect totals, EWMA, health', async (t) => {
  const snap = await examples()
  let now = 1_700_000_000_000
  const b = new Balancer(undefined, () => now)
  const counts = idle()
  const key = 'shop/ledger-all:7000'
  const [v1, v2] = snap.servicePorts.get(key)!.endpoints
  const settings = snap.services.get('shop/ledger-all')!.destination
  const open = [b.begin(v1!, key), b.begin(v1!, key)]
  b.success(v1!, 10)
  b.success(v1!, 10)
  b.begin(v2!, key)()
  b.success(v2!, 4)
  // The same endpoint through another service port counts for that cluster, and for the host overall.
  const viaRoute = b.begin(v1!, 'shop/payments-v1:7000')
  const direct = b.begin({ address: '10.77.0.12', port: 7000, identity: v1!.identity! }, 'workload:shop/payments-v1:7000')

  let view = clustersView(snap, b, counts, now)
  let ledger = view.clusters.find((c) => c.name === key)!
  t.equal(ledger.activeConnections, 2)
  t.match(ledger.hosts, [
    // 2 through this cluster, 1 through payments-v1:7000, 1 dialled by address: one endpoint.
    { address: '10.77.0.12:7000', activeConnections: 4, connects: 2, connectFailures: 0, health: 'HEALTHY', ewmaConnectMs: 5.59 },
    { address: '10.77.0.13:7000', activeConnections: 0, connects: 1, health: 'HEALTHY', ewmaConnectMs: 1.9 },
  ])
  t.equal(view.clusters.find((c) => c.name === 'shop/payments-v1:7000')!.activeConnections, 1)
  t.same(view.otherConnections, [{ name: 'workload:shop/payments-v1:7000', activeConnections: 1 }], 'a workload dialled by address')

  // consecutive5xxErrors is 5 by default: the fifth connect failure ejects v2 for baseEjectionTime (30 s).
  for (let i = 0; i < 4; i++) b.failure(v2!, key, [v1!, v2!], settings)
  view = clustersView(snap, b, counts, now)
  t.match(view.clusters.find((c) => c.name === key)!.hosts[1], { health: 'HEALTHY', consecutiveFailures: 4, connectFailures: 4, ejections: 0 })
  b.failure(v2!, key, [v1!, v2!], settings)
  ledger = clustersView(snap, b, counts, now).clusters.find((c) => c.name === key)!
  t.match(ledger.hosts[1], { health: 'EJECTED', ejectedUntil: new Date(now + 30_000).toISOString(), consecutiveFailures: 0, connectFailures: 5, ejections: 1 })
  t.match(ledger.hosts[0], { health: 'HEALTHY' }, 'never the last healthy one')
  now += 30_001
  t.match(clustersView(snap, b, counts, now).clusters.find((c) => c.name === key)!.hosts[1], { health: 'HEALTHY', ejectedUntil: null, ejections: 1 })

  for (const end of [...open, viaRoute, direct]) end()
  view = clustersView(snap, b, counts, now)
  t.equal(view.clusters.find((c) => c.name === key)!.activeConnections, 0)
  t.same(view.otherConnections, [])
})

t.test('requests in flight per cluster and host, the request rtt P2C_EWMA compares, and L7 outlier counts', async (t) => {
  const snap = await examples()
  let now = 1_700_000_000_000
  const b = new Balancer(undefined, () => now)
  const counts = idle()
  const key = 'shop/ledger-all:7000'
  const eps = snap.servicePorts.get(key)!.endpoints
  const [v1, v2] = eps
  const settings = snap.services.get('shop/ledger-all')!.destination
  const done = b.request(v1!, key, eps, settings)
  const inFlight = [b.request(v1!, key, eps, settings), b.request(v1!, 'shop/payments-v1:7000', [v1!], settings)]
  now += 40
  done({ latencyMs: 40, status: 200 })
  let ledger = clustersView(snap, b, counts, now).clusters.find((c) => c.name === key)!
  t.equal(ledger.pendingRequests, 1, 'this cluster\'s requests only')
  t.match(ledger.hosts, [{ pending: 2, requestEwmaMs: 40 }, { pending: 0, requestEwmaMs: null }])
  now += 10_000
  t.equal(clustersView(snap, b, counts, now).clusters.find((c) => c.name === key)!.hosts[0]!.requestEwmaMs, 14.72, 'decayed by e^-1 after 10 s without a response')
  for (const end of inFlight) end({ latencyMs: 1, status: 0 })
  ledger = clustersView(snap, b, counts, now).clusters.find((c) => c.name === key)!
  t.equal(ledger.pendingRequests, 0)
  t.match(ledger.hosts[0], { pending: 0, consecutive5xx: 2, consecutiveGatewayErrors: 2, consecutiveFailures: 0, health: 'HEALTHY' }, 'two requests without a response, through either port')
  t.match(ledger.hosts[1], { consecutive5xx: 0, consecutiveGatewayErrors: 0 })
  t.equal(b.state(v2!), undefined, 'an endpoint never used has no state')

  // consecutive5xxErrors is 5 by default; consecutiveGatewayErrors is off (0) but still counted.
  for (let i = 0; i < 4; i++) b.request(v2!, key, eps, settings)({ latencyMs: 1, status: 503 })
  t.match(clustersView(snap, b, counts, now).clusters.find((c) => c.name === key)!.hosts[1], { health: 'HEALTHY', consecutive5xx: 4, consecutiveGatewayErrors: 4 })
  b.request(v2!, key, eps, settings)({ latencyMs: 1, status: 503 })
  ledger = clustersView(snap, b, counts, now).clusters.find((c) => c.name === key)!
  t.match(ledger.hosts[1], { health: 'EJECTED', ejectedUntil: new Date(now + 30_000).toISOString(), ejections: 1, consecutive5xx: 0, consecutiveGatewayErrors: 5, consecutiveFailures: 0 },
    'the fifth 503 ejects; the count that ejected starts over')
  b.request(v1!, key, eps, settings)({ latencyMs: 1, status: 404 })
  t.match(clustersView(snap, b, counts, now).clusters.find((c) => c.name === key)!.hosts[0], { consecutive5xx: 0, consecutiveGatewayErrors: 0 }, 'a 404 is an answer: both counts reset')
})

t.test('per service: circuit breakers (limit, in use, open) and the retry budget', async (t) => {
  const snap = await examples()
  const breakers = new CircuitBreakers(new LocalHostState(), new Registry())
  const budgets = new Map([['fraud.shop', 7]])
  const asked: string[] = []
  const counts: ServiceCounts = { breakers, retryBudgetRemaining: (s) => { asked.push(s); return budgets.get(s) ?? null } }
  const fraud = (): ClusterView => clustersView(snap, new Balancer(), counts).clusters.find((c) => c.name === 'shop/fraud:80')!

  // The fraud DestinationPolicy: connectionPool {maxConnections: 100, maxPendingRequests: 50, maxRequests: 200}.
  t.same(fraud().circuitBreakers, {
    maxConnections: { limit: 100, current: 0, open: false },
    maxPendingRequests: { limit: 50, current: 0, open: false },
    maxRequests: { limit: 200, current: 0, open: false },
  })
  t.same(fraud().retryBudget, { percent: 20, minRetriesPerSecond: 10, ttlMs: 10_000, remaining: 7 }, 'ttl defaults to Linkerd\'s 10 s')
  t.ok(asked.includes('fraud.shop'), 'the budget is asked by destination service, <name>.<namespace>')

  const held = [
    ...Array.from({ length: 3 }, () => breakers.acquire('fraud.shop', 'connections', 100)),
    ...Array.from({ length: 50 }, () => breakers.acquire('fraud.shop', 'pending', 50)),
    ...Array.from({ length: 199 }, () => breakers.acquire('fraud.shop', 'requests', 200)),
    breakers.acquire('payments.shop', 'requests', 1024),
  ]
  t.same(fraud().circuitBreakers, {
    maxConnections: { limit: 100, current: 3, open: false },
    maxPendingRequests: { limit: 50, current: 50, open: true },
    maxRequests: { limit: 200, current: 199, open: false },
  }, 'each resource under its own limit')
  held.push(breakers.acquire('fraud.shop', 'requests', 200))
  t.same(fraud().circuitBreakers.maxRequests, { limit: 200, current: 200, open: true }, 'open at the limit')
  t.match(clustersView(snap, new Balancer(), counts).clusters.find((c) => c.name === 'shop/payments:80'), {
    circuitBreakers: { maxRequests: { limit: 1024, current: 1, open: false }, maxConnections: { limit: 1024, current: 0 } },
    retryBudget: { percent: 20, minRetriesPerSecond: 10, ttlMs: 10_000, remaining: null },
  }, 'another service: its own counts, Envoy\'s defaults, no budget known yet')
  for (const release of held) release!()
  t.same(Object.values(fraud().circuitBreakers).map((b) => [b.current, b.open]), [[0, false], [0, false], [0, false]], 'released')
  t.equal(clustersView(snap, new Balancer(), idle()).clusters[0]!.retryBudget.remaining, null, 'no budget function: unknown')
})
