// Load-balancer choices and outlier ejection, with a fake clock.
import t from 'tap'
import { Balancer, MAX_EJECTION_MS } from '../../../daemon/balance/balancer.ts'
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

// L7: per-request results (Envoy's consecutive_5xx and consecutive_gateway_failure, no response
// counting as a gateway error) feed the same ejection state.

/** Request results for `e`, one after another, each ended with `status`. */
function results(b: Balancer, e: Endpoint, s: DestinationSettings, statuses: readonly number[], all: readonly Endpoint[] = eps, key = 'p'): void {
  for (const status of statuses) b.request(e, key, all, s)({ latencyMs: 1, status })
}

function fakeClock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let now = start
  return { now: () => now, advance: (ms) => { now += ms } }
}

const isOut = (b: Balancer, e: Endpoint, now: number): boolean => (b.state(e)?.ejectedUntil ?? 0) > now

t.test('L7: consecutive 5xx responses eject at consecutive5xxErrors, for baseEjectionTime', async (t) => {
  const c = fakeClock()
  const ejected: [string, string, number][] = []
  const b = new Balancer({ ejected: (e, port, until) => ejected.push([e, port, until]) }, c.now)
  const s = settings('P2C_EWMA', { consecutive5xxErrors: 3, consecutiveGatewayErrors: 0 })
  results(b, eps[0]!, s, [500, 501], eps, 'ns/a:80')
  t.match(b.state(eps[0]!), { consecutive5xx: 2, consecutiveGatewayErrors: 0, ejectedUntil: 0 }, 'below the threshold')
  results(b, eps[0]!, s, [599], eps, 'ns/a:80')
  t.same(ejected, [['spiffe://td/ns/a/sa/s1@10.0.0.1:80', 'ns/a:80', c.now() + 30_000]], 'ejected at the third, named with its service port')
  t.match(b.state(eps[0]!), { consecutive5xx: 0, ejections: 1, requests: 3, requestFailures: 3, failures: 0 }, 'the count starts over; connect failures untouched')
  t.notOk(Array.from({ length: 20 }, () => b.pick('p', eps, s, undefined, 'request')).includes(eps[0]), 'skipped by the request path')
  t.notOk(Array.from({ length: 20 }, () => b.pick('p', eps, s)).includes(eps[0]), 'and by the connection path: one state')
})

t.test('L7: 502, 503, 504 and no response eject through consecutiveGatewayErrors', async (t) => {
  const c = fakeClock()
  const b = new Balancer(undefined, c.now)
  const s = settings('RANDOM', { consecutive5xxErrors: 0, consecutiveGatewayErrors: 4 })
  results(b, eps[0]!, s, [502, 503, 504])
  t.match(b.state(eps[0]!), { consecutiveGatewayErrors: 3, consecutive5xx: 3, ejectedUntil: 0 })
  results(b, eps[0]!, s, [0])
  t.ok(isOut(b, eps[0]!, c.now()), 'no response (connect failure, reset, per-try timeout) is the fourth gateway error')
  t.equal(b.state(eps[0]!)!.consecutiveGatewayErrors, 0)

  results(b, eps[1]!, s, Array.from({ length: 10 }, () => 500))
  t.notOk(isOut(b, eps[1]!, c.now()), 'a 500 is no gateway error, and the 5xx detector is off')
  t.match(b.state(eps[1]!), { consecutive5xx: 10, consecutiveGatewayErrors: 0 }, 'counted all the same')
})

t.test('L7: a 500 counts for consecutive5xxErrors, not for consecutiveGatewayErrors, and breaks a run of gateway errors', async (t) => {
  const c = fakeClock()
  const b = new Balancer(undefined, c.now)
  const gw = settings('RANDOM', { consecutive5xxErrors: 0, consecutiveGatewayErrors: 3 })
  results(b, eps[0]!, gw, [502, 503, 500, 504, 0])
  t.notOk(isOut(b, eps[0]!, c.now()), 'four gateway errors, but not three in a row (Envoy resets on a non-gateway 5xx)')
  t.match(b.state(eps[0]!), { consecutiveGatewayErrors: 2, consecutive5xx: 5 })
  results(b, eps[0]!, gw, [503])
  t.ok(isOut(b, eps[0]!, c.now()), 'three in a row')

  const fivexx = settings('RANDOM', { consecutive5xxErrors: 3, consecutiveGatewayErrors: 0 })
  const b2 = new Balancer(undefined, c.now)
  results(b2, eps[1]!, fivexx, [500, 503, 0])
  t.ok(isOut(b2, eps[1]!, c.now()), '500, 503 and no response are all 5xx errors')
})

t.test('L7: a response under 500 resets both counts', async (t) => {
  const c = fakeClock()
  const b = new Balancer(undefined, c.now)
  const s = settings('RANDOM', { consecutive5xxErrors: 3, consecutiveGatewayErrors: 3 })
  results(b, eps[0]!, s, [503, 0, 200, 503, 502, 404, 504, 0, 302, 0, 503, 101, 503, 503])
  t.match(b.state(eps[0]!), { consecutive5xx: 2, consecutiveGatewayErrors: 2, ejectedUntil: 0, requests: 14, requestFailures: 10 }, '2xx, 4xx, 3xx and 1xx each break the run')
  results(b, eps[0]!, s, [502])
  t.ok(isOut(b, eps[0]!, c.now()))
  t.match(b.state(eps[0]!), { consecutive5xx: 0, consecutiveGatewayErrors: 0 }, 'both reached their threshold: both start over')
})

t.test('L7: an ejection resets only the count that reached its threshold (Envoy)', async (t) => {
  const c = fakeClock()
  const b = new Balancer(undefined, c.now)
  const s = settings('RANDOM', { consecutive5xxErrors: 5, consecutiveGatewayErrors: 2 })
  results(b, eps[0]!, s, [503, 503])
  t.match(b.state(eps[0]!), { ejections: 1, consecutiveGatewayErrors: 0, consecutive5xx: 2 }, 'gateway errors ejected: the 5xx count goes on')
  const b2 = new Balancer(undefined, c.now)
  results(b2, eps[0]!, settings('RANDOM', { consecutive5xxErrors: 2, consecutiveGatewayErrors: 5 }), [503, 503])
  t.match(b2.state(eps[0]!), { ejections: 1, consecutiveGatewayErrors: 2, consecutive5xx: 0 }, '5xx ejected: the gateway count goes on')
})

t.test('L7: only the first call of a request\'s callback counts', async (t) => {
  const b = new Balancer(undefined, fakeClock().now)
  const s = settings('RANDOM', { consecutive5xxErrors: 2 })
  const done = b.request(eps[0]!, 'p', eps, s)
  done({ latencyMs: 1, status: 503 })
  done({ latencyMs: 1, status: 503 })
  done({ latencyMs: 1, status: 200 })
  t.match(b.state(eps[0]!), { consecutive5xx: 1, ejectedUntil: 0, requests: 1, requestFailures: 1, pending: 0 })
})

t.test('L7: maxEjectionPercent is honoured, at least one may go, never all of them', async (t) => {
  const c = fakeClock()
  const b = new Balancer(undefined, c.now)
  const half = settings('RANDOM', { consecutive5xxErrors: 2, maxEjectionPercent: 50 })
  for (const e of eps.slice(0, 3)) results(b, e, half, [503, 503])
  t.same(eps.map((e) => isOut(b, e, c.now())), [true, true, false, false], '50% of 4: two')
  t.equal(b.state(eps[2]!)!.consecutive5xx, 2, 'refused: the count stays at the threshold')
  c.advance(30_001)
  results(b, eps[2]!, half, [503])
  t.ok(isOut(b, eps[2]!, c.now()), 'so the next failure ejects it once there is room')

  const b2 = new Balancer(undefined, c.now)
  const tenth = settings('RANDOM', { consecutive5xxErrors: 1, maxEjectionPercent: 10 })
  for (const e of eps) results(b2, e, tenth, [500])
  t.equal(eps.filter((e) => isOut(b2, e, c.now())).length, 1, '10% of 4 rounds down to 0: one anyway, as Envoy')
  const none = settings('RANDOM', { consecutive5xxErrors: 1, maxEjectionPercent: 0 })
  const b0 = new Balancer(undefined, c.now)
  results(b0, eps[0]!, none, [500])
  t.ok(isOut(b0, eps[0]!, c.now()), 'even at 0%, as the TCP path')

  const pair = eps.slice(0, 2)
  const b3 = new Balancer(undefined, c.now)
  const all = settings('RANDOM', { consecutive5xxErrors: 1, maxEjectionPercent: 100 })
  for (let i = 0; i < 5; i++) for (const e of pair) results(b3, e, all, [0], pair)
  t.same(pair.map((e) => isOut(b3, e, c.now())), [true, false], '100% of 2, both failing: never the last one')
  t.same(new Set(Array.from({ length: 50 }, () => b3.pick('q', pair, all, undefined, 'request'))), new Set([pair[1]]), 'the one left in takes the traffic')
  t.equal(b3.pick('q', [pair[0]!], all, undefined, 'request'), pair[0], 'panic: with every candidate ejected, one is used anyway')
})

t.test('L7: an ejected endpoint returns after the ejection; the next lasts base × times, capped', async (t) => {
  const c = fakeClock()
  const b = new Balancer(undefined, c.now)
  const s = settings('ROUND_ROBIN', { consecutive5xxErrors: 3, baseEjectionTimeMs: 30_000 })
  const inRotation = (): boolean => Array.from({ length: 8 }, () => b.pick('p', eps, s, undefined, 'request')).includes(eps[0])
  results(b, eps[0]!, s, [503, 503, 503])
  t.equal(b.state(eps[0]!)!.ejectedUntil, c.now() + 30_000)
  c.advance(29_999)
  t.notOk(inRotation(), 'still out 1 ms before baseEjectionTime')
  c.advance(1)
  t.ok(inRotation(), 'back after baseEjectionTime')
  results(b, eps[0]!, s, [503, 503, 503])
  t.equal(b.state(eps[0]!)!.ejectedUntil, c.now() + 60_000, 'the second ejection lasts twice as long')
  c.advance(60_000)
  results(b, eps[0]!, s, [0, 0, 0])
  t.equal(b.state(eps[0]!)!.ejectedUntil, c.now() + 90_000, 'the third three times')

  const long = settings('ROUND_ROBIN', { consecutive5xxErrors: 1, baseEjectionTimeMs: 200_000 })
  const b2 = new Balancer(undefined, c.now)
  results(b2, eps[1]!, long, [503])
  c.advance(200_000)
  results(b2, eps[1]!, long, [503])
  t.equal(b2.state(eps[1]!)!.ejectedUntil, c.now() + MAX_EJECTION_MS, 'at most 300 s (Envoy\'s max_ejection_time)')
})

t.test('L7: a good response after an ejection decays the multiplier, as a good connect does', async (t) => {
  const c = fakeClock()
  const b = new Balancer(undefined, c.now)
  const s = settings('RANDOM', { consecutive5xxErrors: 1 })
  results(b, eps[0]!, s, [503])
  results(b, eps[0]!, s, [200])
  t.equal(b.state(eps[0]!)!.ejections, 1, 'not while ejected (a panic request)')
  c.advance(30_000)
  results(b, eps[0]!, s, [200])
  t.equal(b.state(eps[0]!)!.ejections, 0, 'after it')
  results(b, eps[0]!, s, [503])
  t.equal(b.state(eps[0]!)!.ejectedUntil, c.now() + 30_000, 'so the next ejection is base again')
})

t.test('TCP and L7 results share the ejection budget of a port', async (t) => {
  const c = fakeClock()
  const b = new Balancer(undefined, c.now)
  const s = settings('RANDOM', { consecutive5xxErrors: 1 })
  b.failure(eps[0]!, 'p', eps, s)
  results(b, eps[1]!, s, [503])
  t.same(eps.map((e) => isOut(b, e, c.now())), [true, false, false, false], 'the TCP ejection took the one slot of 10% of 4')
  t.match(b.state(eps[0]!), { failures: 0, consecutive5xx: 0 })
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

t.test('an ejection by another worker thread keeps the endpoint out here for as long', async (t) => {
  let now = 1_000_000
  const events: string[] = []
  const b = new Balancer({ ejected: (e) => events.push(e) }, () => now)
  const s = settings('ROUND_ROBIN', { consecutiveGatewayErrors: 3 })
  b.ejectedElsewhere('spiffe://td/ns/a/sa/s1@10.0.0.1:80', now + 5000)
  t.notOk(Array.from({ length: 8 }, () => b.pick('p', eps, s)).includes(eps[0]), 'skipped while the other thread\'s ejection lasts')
  t.same(events, [], 'not reported again: the thread that ejected it did')
  b.ejectedElsewhere('spiffe://td/ns/a/sa/s1@10.0.0.1:80', now + 1000)
  t.equal(b.state(eps[0]!)!.ejectedUntil, now + 5000, 'a shorter one does not cut it short')
  now += 5001
  t.ok(Array.from({ length: 8 }, () => b.pick('p', eps, s)).includes(eps[0]), 'back when it ends')
})

t.test('worker threads share their runs of failures: the host-wide streak ejects, and a success anywhere breaks it', async (t) => {
  const { SharedHostState } = await import('../../../daemon/limits/shared-host-state.ts')
  const now = 1_000_000
  const host = new SharedHostState(64)
  const ejected: string[] = []
  // Two balancers on one table, as two threads' data planes on one SharedArrayBuffer.
  const a = new Balancer({ ejected: (e) => ejected.push(`a:${e}`) }, () => now, host)
  const b = new Balancer({ ejected: (e) => ejected.push(`b:${e}`) }, () => now, new SharedHostState(host.buffer))
  const s = settings('ROUND_ROBIN', { consecutive5xxErrors: 3, consecutiveGatewayErrors: 0 })
  a.request(eps[0]!, 'p', eps, s)({ latencyMs: 1, status: 500 })
  b.request(eps[0]!, 'p', eps, s)({ latencyMs: 1, status: 500 })
  t.same(ejected, [], 'two in a row across the threads: below the threshold')
  a.request(eps[0]!, 'p', eps, s)({ latencyMs: 1, status: 200 })
  b.request(eps[0]!, 'p', eps, s)({ latencyMs: 1, status: 500 })
  b.request(eps[0]!, 'p', eps, s)({ latencyMs: 1, status: 500 })
  t.same(ejected, [], 'a success on the other thread broke the run')
  a.request(eps[0]!, 'p', eps, s)({ latencyMs: 1, status: 503 })
  t.same(ejected, ['a:spiffe://td/ns/a/sa/s1@10.0.0.1:80'], 'the third of the host\'s run ejects, on the thread that saw it')
  t.equal(b.state(eps[0]!)!.consecutive5xx, 2, 'the other thread\'s last look')

  // Connect failures (TCP) are a run of the host too.
  const c = settings('ROUND_ROBIN', { consecutive5xxErrors: 0, consecutiveGatewayErrors: 2 })
  a.failure(eps[1]!, 'p', eps, c)
  b.failure(eps[1]!, 'p', eps, { ...c, outlierDetection: { ...c.outlierDetection, maxEjectionPercent: 100 } })
  t.same(ejected.at(-1), 'b:spiffe://td/ns/a/sa/s2@10.0.0.2:80', 'two connect failures on two threads: ejected')
})
