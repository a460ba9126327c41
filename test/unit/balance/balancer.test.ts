// Load-balancer choices and outlier ejection, with a fake clock.
import t from 'tap'
import { Balancer } from '../../../daemon/balance/balancer.ts'
import type { DestinationSettings, Endpoint, Snapshot } from '../../../policy/snapshot.ts'

const eps: Endpoint[] = [1, 2, 3, 4].map((i) => ({ address: `10.0.0.${i}`, port: 80, identity: `spiffe://td/ns/a/sa/s${i}` }))
const settings = (lb: DestinationSettings['loadBalancer'], od: Partial<DestinationSettings['outlierDetection']> = {}): DestinationSettings => ({
  source: 'test', loadBalancer: lb,
  connectionPool: { maxConnections: 1, maxPendingRequests: 1, maxRequests: 1, connectTimeoutMs: 1000 },
  outlierDetection: { consecutive5xxErrors: 5, consecutiveGatewayErrors: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10, ...od },
  retryBudget: { percent: 20, minRetriesPerSecond: 10, ttlMs: 10_000 },
})

t.test('ROUND_ROBIN, RANDOM, and tried endpoints are skipped', async (t) => {
  const b = new Balancer()
  const rr = settings('ROUND_ROBIN')
  t.same([0, 1, 2, 3, 4].map(() => b.pick('p', eps, rr)), [eps[0], eps[1], eps[2], eps[3], eps[0]])
  const seen = new Set<Endpoint>()
  for (let i = 0; i < 200; i++) seen.add(b.pick('p', eps, settings('RANDOM'))!)
  t.equal(seen.size, 4, 'RANDOM reaches every endpoint')
  t.equal(b.pick('p', eps, rr, new Set(eps)), undefined, 'nothing left when all were tried')
  t.equal(b.pick('p', eps, settings('RANDOM'), new Set(eps.slice(1))), eps[0])
})

t.test('LEAST_REQUEST and P2C_EWMA prefer the less loaded / faster endpoint of two', async (t) => {
  const b = new Balancer()
  const two = eps.slice(0, 2)
  const ends = Array.from({ length: 5 }, () => b.begin(two[0]!, 'p'))
  t.ok(Array.from({ length: 50 }, () => b.pick('p', two, settings('LEAST_REQUEST'))).every((e) => e === two[1]), 'LEAST_REQUEST: the endpoint with no active connection')
  for (const end of ends) end()
  for (let i = 0; i < 10; i++) { b.success(two[0]!, 200); b.success(two[1]!, 2) }
  t.ok(Array.from({ length: 50 }, () => b.pick('p', two, settings('P2C_EWMA'))).every((e) => e === two[1]), 'P2C_EWMA: the endpoint that connects faster')
  t.ok(b.state(two[0]!)!.ewmaMs > 100 && b.state(two[1]!)!.ewmaMs < 10)
})

t.test('outlier detection ejects after consecutive failures, for base × times, never all', async (t) => {
  let now = 1_000_000
  const ejected: string[] = []
  const b = new Balancer({ ejected: (e) => ejected.push(e) }, () => now)
  const s = settings('ROUND_ROBIN', { consecutiveGatewayErrors: 3 })
  for (let i = 0; i < 2; i++) b.failure(eps[0]!, 'p', eps, s)
  t.same(ejected, [], 'below the threshold')
  b.success(eps[0]!, 1)
  for (let i = 0; i < 2; i++) b.failure(eps[0]!, 'p', eps, s)
  t.same(ejected, [], 'a success resets the count')
  b.failure(eps[0]!, 'p', eps, s)
  t.same(ejected, ['spiffe://td/ns/a/sa/s1@10.0.0.1:80'], 'ejected at the third consecutive failure')
  t.notOk(Array.from({ length: 8 }, () => b.pick('p', eps, s)).includes(eps[0]), 'an ejected endpoint is skipped')
  for (let i = 0; i < 3; i++) b.failure(eps[1]!, 'p', eps, s)
  t.equal(ejected.length, 1, 'maxEjectionPercent 10% of 4 endpoints: only one at a time (at least one, as Envoy)')
  now += 30_001
  t.ok(Array.from({ length: 8 }, () => b.pick('p', eps, s)).includes(eps[0]), 'back after baseEjectionTime')
  for (let i = 0; i < 3; i++) b.failure(eps[0]!, 'p', eps, s)
  t.equal(b.state(eps[0]!)!.ejectedUntil, now + 60_000, 'the second ejection lasts twice as long')

  const pair = eps.slice(0, 2)
  const b2 = new Balancer(undefined, () => now)
  const all = settings('RANDOM', { consecutiveGatewayErrors: 1, maxEjectionPercent: 100 })
  b2.failure(pair[0]!, 'q', pair, all)
  b2.failure(pair[1]!, 'q', pair, all)
  t.ok(b2.state(pair[0]!)!.ejectedUntil > now && b2.state(pair[1]!)!.ejectedUntil === 0, 'never every endpoint')
  const b3 = new Balancer(undefined, () => now)
  b3.failure(pair[0]!, 'q', pair, all)
  now += 1
  t.equal(b3.pick('q', [pair[0]!], all), pair[0], 'with only ejected candidates left, one is used anyway')
})

t.test('0 turns a detector off', async (t) => {
  const b = new Balancer()
  for (let i = 0; i < 10; i++) b.failure(eps[0]!, 'p', eps, settings('RANDOM', { consecutiveGatewayErrors: 0, consecutive5xxErrors: 0 }))
  t.equal(b.state(eps[0]!)!.ejectedUntil, 0)
  for (let i = 0; i < 5; i++) b.failure(eps[1]!, 'p', eps, settings('RANDOM', { consecutiveGatewayErrors: 0, consecutive5xxErrors: 5 }))
  t.ok(b.state(eps[1]!)!.ejectedUntil > 0, 'the 5xx detector alone (the default) ejects at 5')
})

t.test('ejections are capped at 300 s and decay after a healthy spell', async (t) => {
  let now = 0
  const b = new Balancer(undefined, () => now)
  const s = settings('RANDOM', { consecutive5xxErrors: 1, baseEjectionTimeMs: 200_000 })
  b.failure(eps[0]!, 'p', eps, s)
  t.equal(b.state(eps[0]!)!.ejectedUntil, 200_000)
  now = 200_001
  b.failure(eps[0]!, 'p', eps, s)
  t.equal(b.state(eps[0]!)!.ejectedUntil, now + 300_000, 'the second would be 400 s: capped at 300 s')
  now += 300_001
  b.success(eps[0]!, 1)
  t.equal(b.state(eps[0]!)!.ejections, 1, 'a success after the ejection decays the multiplier')
})

t.test('open connections are counted per endpoint and per balancer key, and end once', async (t) => {
  const b = new Balancer()
  const a1 = b.begin(eps[0]!, 'ns/a:80')
  const a2 = b.begin(eps[0]!, 'ns/b:80')
  const a3 = b.begin(eps[1]!, 'ns/a:80')
  t.equal(b.state(eps[0]!)!.active, 2, 'an endpoint counts over every port that uses it')
  t.same([...b.activeByPort()], [['ns/a:80', 2], ['ns/b:80', 1]])
  a1()
  a1()
  t.same([...b.activeByPort()], [['ns/a:80', 1], ['ns/b:80', 1]], 'ending twice counts once')
  a2()
  a3()
  t.same([...b.activeByPort()], [], 'no zero entries left behind')
  t.equal(b.state(eps[0]!)!.active, 0)
  b.success(eps[0]!, 3)
  b.failure(eps[0]!, 'ns/a:80', eps, settings('RANDOM'))
  t.match(b.state(eps[0]!), { connects: 1, connectFailures: 1, failures: 1 })
})

t.test('retain forgets endpoints and cursors a new snapshot no longer has; an open one goes when its last connection ends', async (t) => {
  const b = new Balancer()
  const snap = (ports: Record<string, Endpoint[]>, workloads: Snapshot['workloads'] = new Map()): Snapshot =>
    ({ servicePorts: new Map(Object.entries(ports).map(([key, endpoints]) => [key, { key, endpoints }])), workloads }) as unknown as Snapshot
  for (const e of eps) b.success(e, 1)
  b.pick('ns/gone:80', eps, settings('ROUND_ROBIN'))
  b.pick('ns/kept:80', eps, settings('ROUND_ROBIN'))
  const end = b.begin(eps[3]!, 'ns/gone:80')
  // A workload dialled by its own address is balanced as an endpoint of its own: kept while the workload exists.
  const direct: Endpoint = { address: '10.0.0.9', port: 7000, identity: 'spiffe://td/ns/a/sa/w' }
  b.success(direct, 1)
  const w = { identity: direct.identity, addresses: [direct.address], ports: [{ port: 7000 }] }
  b.retain(snap({ 'ns/kept:80': eps.slice(0, 2) }, new Map([['a/w', w]]) as unknown as Snapshot['workloads']))
  t.ok(b.state(eps[0]!) && b.state(eps[1]!), 'endpoints still in the snapshot keep their state')
  t.ok(b.state(direct), 'a workload address:port keeps its state')
  t.equal(b.state(eps[2]!), undefined, 'gone and idle: forgotten now')
  t.equal(b.state(eps[3]!)!.active, 1, 'gone but open: kept while its connection lasts')
  end()
  t.equal(b.state(eps[3]!), undefined, 'forgotten when its last connection ends')
  t.equal(b.pick('ns/kept:80', eps, settings('ROUND_ROBIN')), eps[1], 'a kept port keeps its round-robin cursor')
  t.equal(b.pick('ns/gone:80', eps, settings('ROUND_ROBIN')), eps[0], 'a removed port\'s cursor starts over')

  // Retired, then back in a later snapshot before its connection ends: it stays.
  const end2 = b.begin(eps[1]!, 'ns/kept:80')
  b.retain(snap({}))
  b.retain(snap({ 'ns/kept:80': eps.slice(0, 2) }))
  end2()
  t.equal(b.state(eps[1]!)!.connects, 1, 'back in the snapshot: not forgotten when its connection ends')
})
