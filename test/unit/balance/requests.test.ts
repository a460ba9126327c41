// Per-request endpoint choice (the L7 endpoint stage): peak-EWMA of request latency, pending
// requests, and how they combine with ejection and retain(), with a fake clock.
import t from 'tap'
import { Balancer, REQUEST_DEFAULT_RTT_MS, type RequestOutcome } from '../../../daemon/balance/balancer.ts'
import type { DestinationSettings, Endpoint, Snapshot } from '../../../policy/snapshot.ts'

const eps: Endpoint[] = [1, 2, 3, 4].map((i) => ({ address: `10.0.0.${i}`, port: 80, identity: `spiffe://td/ns/a/sa/s${i}` }))
const settings = (lb: DestinationSettings['loadBalancer'], od: Partial<DestinationSettings['outlierDetection']> = {}): DestinationSettings => ({
  source: 'test', loadBalancer: lb,
  connectionPool: { maxConnections: 1, maxPendingRequests: 1, maxRequests: 1, connectTimeoutMs: 1000 },
  outlierDetection: { consecutive5xxErrors: 5, consecutiveGatewayErrors: 5, intervalMs: 10_000, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10, ...od },
  retryBudget: { percent: 20, minRetriesPerSecond: 10, ttlMs: 10_000 },
})
const P2C = settings('P2C_EWMA')

function clock(start = 1_000_000): { now: () => number; advance: (ms: number) => void } {
  let now = start
  return { now: () => now, advance: (ms) => { now += ms } }
}

/** One request to `e` that answers `latencyMs` later on the fake clock. */
function respond(b: Balancer, c: ReturnType<typeof clock>, e: Endpoint, latencyMs: number, status = 200): void {
  const done = b.request(e, 'p', eps, P2C)
  c.advance(latencyMs)
  done({ latencyMs, status })
}

const picks = (n: number, pick: () => Endpoint | undefined): Map<Endpoint | undefined, number> => {
  const count = new Map<Endpoint | undefined, number>()
  for (let i = 0; i < n; i++) {
    const e = pick()
    count.set(e, (count.get(e) ?? 0) + 1)
  }
  return count
}

t.test('a new endpoint starts at the default rtt; a slower response becomes the estimate at once', async (t) => {
  const c = clock()
  const b = new Balancer(undefined, c.now)
  t.equal(b.requestRttMs(eps[0]!), undefined, 'no estimate before the first response')
  b.request(eps[0]!, 'p', eps, P2C)
  t.equal(b.state(eps[0]!)!.requestEwmaMs, REQUEST_DEFAULT_RTT_MS, 'Linkerd\'s 30 ms until then')
  t.equal(REQUEST_DEFAULT_RTT_MS, 30)
  respond(b, c, eps[1]!, 20)
  t.equal(b.requestRttMs(eps[1]!), 20, 'the first response replaces the default')
  respond(b, c, eps[1]!, 300)
  t.equal(b.requestRttMs(eps[1]!), 300, 'peak: a slower response is taken whole, however recent the last one')
  const before = b.state(eps[1]!)!.requestEwmaMs
  const done = b.request(eps[1]!, 'p', eps, P2C)
  done({ latencyMs: 5, status: 200 })
  t.equal(b.state(eps[1]!)!.requestEwmaMs, before, 'a faster response with no time elapsed does not move it')
})

t.test('a faster response pulls the estimate down by 1 - exp(-elapsed / 10 s)', async (t) => {
  const c = clock()
  const b = new Balancer(undefined, c.now)
  respond(b, c, eps[0]!, 100)
  c.advance(990)
  respond(b, c, eps[0]!, 10) // 1 s after the previous response
  const w = Math.exp(-1000 / 10_000)
  t.ok(Math.abs(b.state(eps[0]!)!.requestEwmaMs - (100 * w + 10 * (1 - w))) < 1e-9, `100 → ${b.state(eps[0]!)!.requestEwmaMs.toFixed(2)} after 1 s`)
  const afterOne = b.state(eps[0]!)!.requestEwmaMs
  c.advance(29_990)
  respond(b, c, eps[0]!, 10) // 30 s later
  const afterThirty = b.state(eps[0]!)!.requestEwmaMs
  t.ok(afterThirty < afterOne && afterThirty > 10, 'moves further with more elapsed time, never below the observed rtt')
  t.ok(Math.abs(afterThirty - (afterOne * Math.exp(-3) + 10 * (1 - Math.exp(-3)))) < 1e-9, 'weighted by the time since the previous response')

  // The same responses packed into one instant: the estimate stays at the peak.
  const c2 = clock()
  const b2 = new Balancer(undefined, c2.now)
  respond(b2, c2, eps[0]!, 100)
  for (let i = 0; i < 50; i++) b2.request(eps[0]!, 'p', eps, P2C)({ latencyMs: 10, status: 200 })
  t.equal(b2.state(eps[0]!)!.requestEwmaMs, 100, 'the decay follows time, not the number of responses')
})

t.test('between responses the estimate P2C compares decays, so a once-slow endpoint is tried again', async (t) => {
  const c = clock()
  const b = new Balancer(undefined, c.now)
  const [fast, slow] = [eps[0]!, eps[1]!]
  respond(b, c, slow, 500)
  respond(b, c, fast, 5)
  t.ok([...picks(200, () => b.pick('p', [fast, slow], P2C, undefined, 'request')).keys()].every((e) => e === fast), 'right after: the fast one')
  t.equal(b.state(slow)!.requestEwmaMs, 500, 'reading the cost does not change the stored estimate')
  for (let s = 0; s < 60; s++) {
    c.advance(1000)
    respond(b, c, fast, 5) // the fast one keeps answering; the slow one gets nothing
  }
  t.ok((b.requestRttMs(slow)!) < 5, `after 60 s without a response: ${b.requestRttMs(slow)!.toFixed(2)} ms`)
  t.ok(picks(200, () => b.pick('p', [fast, slow], P2C, undefined, 'request')).get(slow)! > 0, 'probed again')
})

t.test('P2C_EWMA in request mode: the lower rtt × (pending + 1) wins; connection mode keeps its own estimate', async (t) => {
  const c = clock()
  const b = new Balancer(undefined, c.now)
  const [a, z] = [eps[0]!, eps[1]!]
  respond(b, c, a, 10)
  respond(b, c, z, 50)
  // z connects faster: connection choice and request choice disagree on purpose.
  for (let i = 0; i < 10; i++) { b.success(a, 200); b.success(z, 2) }
  t.same([...picks(100, () => b.pick('p', [a, z], P2C, undefined, 'request')).keys()], [a], 'request mode: the faster responses')
  t.same([...picks(100, () => b.pick('p', [a, z], P2C)).keys()], [z], 'connection mode (the default): the faster connects')

  // a: 10 ms × 5 pending + 1 = 60 > z: 50 ms × 1 = 50.
  const inFlight = Array.from({ length: 5 }, () => b.request(a, 'p', eps, P2C))
  t.same([...picks(100, () => b.pick('p', [a, z], P2C, undefined, 'request')).keys()], [z], 'pending requests raise the cost')
  for (const done of inFlight.slice(1)) done({ latencyMs: 10, status: 200 })
  t.same([...picks(100, () => b.pick('p', [a, z], P2C, undefined, 'request')).keys()], [a], 'a: 10 × 2 = 20 < 50 again')
  inFlight[0]!({ latencyMs: 10, status: 200 })

  // An endpoint with no response yet costs the default 30 ms × (pending + 1).
  const fresh = eps[2]!
  t.same([...picks(100, () => b.pick('p', [z, fresh], P2C, undefined, 'request')).keys()], [fresh], 'new (30) beats 50')
  t.same([...picks(100, () => b.pick('p', [a, fresh], P2C, undefined, 'request')).keys()], [a], 'but not 10')
  const opened = [b.begin(a, 'p'), b.begin(a, 'p'), b.begin(a, 'p')]
  t.same([...picks(100, () => b.pick('p', [a, fresh], P2C, undefined, 'request')).keys()], [a], 'open connections are no request load')
  for (const end of opened) end()
})

t.test('LEAST_REQUEST in request mode compares pending requests, in connection mode open connections', async (t) => {
  const b = new Balancer()
  const [a, z] = [eps[0]!, eps[1]!]
  const reqs = [b.request(a, 'p', eps, P2C), b.request(a, 'p', eps, P2C)]
  const conns = Array.from({ length: 5 }, () => b.begin(z, 'p'))
  const lr = settings('LEAST_REQUEST')
  t.same([...picks(100, () => b.pick('p', [a, z], lr, undefined, 'request')).keys()], [z], 'request mode: z has no request in flight')
  t.same([...picks(100, () => b.pick('p', [a, z], lr)).keys()], [a], 'connection mode: a has no open connection')
  for (const done of reqs) done({ latencyMs: 1, status: 200 })
  for (const end of conns) end()
})

t.test('ROUND_ROBIN and RANDOM ignore the mode; tried endpoints are skipped in request mode', async (t) => {
  const b = new Balancer()
  const rr = settings('ROUND_ROBIN')
  t.same([0, 1, 2, 3, 4].map(() => b.pick('p', eps, rr, undefined, 'request')), [eps[0], eps[1], eps[2], eps[3], eps[0]])
  t.equal(picks(400, () => b.pick('p', eps, settings('RANDOM'), undefined, 'request')).size, 4)
  t.equal(b.pick('p', eps, P2C, new Set(eps.slice(1)), 'request'), eps[0])
  t.equal(b.pick('p', eps, P2C, new Set(eps), 'request'), undefined)
})

t.test('a slow endpoint gets a small share of 10,000 requests under steady load', async (t) => {
  const c = clock()
  const b = new Balancer(undefined, c.now)
  const latency = new Map<Endpoint, number>([[eps[0]!, 200], [eps[1]!, 10], [eps[2]!, 10], [eps[3]!, 10]])
  const inFlight: { at: number; done: (o: RequestOutcome) => void; ms: number }[] = []
  const share = new Map<Endpoint, number>()
  // One request a millisecond; each answers after its endpoint's fixed latency.
  for (let i = 0; i < 10_000; i++) {
    inFlight.sort((x, y) => x.at - y.at)
    while (inFlight.length > 0 && inFlight[0]!.at <= i) {
      const r = inFlight.shift()!
      c.advance(r.at - c.now() + 1_000_000)
      r.done({ latencyMs: r.ms, status: 200 })
    }
    c.advance(i - c.now() + 1_000_000)
    const e = b.pick('p', eps, P2C, undefined, 'request')!
    share.set(e, (share.get(e) ?? 0) + 1)
    const ms = latency.get(e)!
    inFlight.push({ at: i + ms, done: b.request(e, 'p', eps, P2C), ms })
  }
  const slow = share.get(eps[0]!) ?? 0
  t.ok(slow < 100, `the 200 ms endpoint: ${slow} of 10,000 (round robin would give it 2,500)`)
  for (const e of eps.slice(1)) t.ok(share.get(e)! > 3000, `a 10 ms endpoint: ${share.get(e)}`)
  t.ok(b.state(eps[1]!)!.pending > 0, 'the fast endpoints carried concurrent requests')
})

t.test('ejected endpoints are skipped in request mode; a failed request\'s time to fail counts as rtt', async (t) => {
  const c = clock()
  const b = new Balancer(undefined, c.now)
  const s = settings('P2C_EWMA', { consecutiveGatewayErrors: 1 })
  respond(b, c, eps[0]!, 1)
  for (const e of eps.slice(1)) respond(b, c, e, 100)
  b.failure(eps[0]!, 'p', eps, s)
  t.ok(b.state(eps[0]!)!.ejectedUntil > c.now())
  t.notOk(picks(200, () => b.pick('p', eps, s, undefined, 'request')).has(eps[0]), 'the fastest, but ejected')

  // Failing fast on the fake clock, so eps[0] stays out.
  for (let i = 0; i < 20; i++) b.request(eps[1]!, 'p', eps, P2C)({ latencyMs: 3000, status: 0 })
  t.match(b.state(eps[1]!), { failures: 0, consecutive5xx: 20, consecutiveGatewayErrors: 20, ejectedUntil: 0, requests: 21, requestFailures: 20 },
    'counted, not ejected: maxEjectionPercent (10% of 4, so one) is taken; connect failures are a count of their own')
  t.equal(b.requestRttMs(eps[1]!), 3000, 'the time to failure counts as rtt, as Linkerd')
})

t.test('requests are counted per endpoint and per balancer key, and end once', async (t) => {
  const b = new Balancer(undefined, clock().now)
  const a1 = b.request(eps[0]!, 'ns/a:80', eps, P2C)
  const a2 = b.request(eps[0]!, 'ns/b:80', eps, P2C)
  const a3 = b.request(eps[1]!, 'ns/a:80', eps, P2C)
  t.equal(b.state(eps[0]!)!.pending, 2, 'an endpoint counts over every port that uses it')
  t.same([...b.pendingByPort()], [['ns/a:80', 2], ['ns/b:80', 1]])
  a1({ latencyMs: 5, status: 200 })
  a1({ latencyMs: 900, status: 200 })
  t.same([...b.pendingByPort()], [['ns/a:80', 1], ['ns/b:80', 1]], 'ending twice counts once')
  t.equal(b.state(eps[0]!)!.requests, 1)
  t.equal(b.requestRttMs(eps[0]!), 5, 'the second call records nothing')
  a2({ latencyMs: 5, status: 200 })
  a3({ latencyMs: 5, status: 200 })
  t.same([...b.pendingByPort()], [], 'no zero entries left behind')
  t.same([...b.activeByPort()], [], 'requests are not connections')
  t.equal(b.state(eps[0]!)!.pending, 0)
})

t.test('retain forgets request state; an endpoint with requests in flight goes when the last one ends', async (t) => {
  const c = clock()
  const b = new Balancer(undefined, c.now)
  const snap = (ports: Record<string, Endpoint[]>): Snapshot =>
    ({ servicePorts: new Map(Object.entries(ports).map(([key, endpoints]) => [key, { key, endpoints }])), workloads: new Map() }) as unknown as Snapshot
  for (const e of eps) respond(b, c, e, 7)
  const req = b.request(eps[3]!, 'ns/gone:80', eps, P2C)
  const req2 = b.request(eps[2]!, 'ns/gone:80', eps, P2C)
  const conn = b.begin(eps[2]!, 'ns/gone:80')
  b.retain(snap({ 'ns/kept:80': eps.slice(0, 2) }))
  t.equal(b.state(eps[0]!)!.requestEwmaMs, 7, 'kept endpoints keep their estimate')
  t.equal(b.state(eps[3]!)!.pending, 1, 'gone but with a request in flight: kept')
  req({ latencyMs: 7, status: 200 })
  t.equal(b.state(eps[3]!), undefined, 'forgotten when its last request ends')
  req2({ latencyMs: 7, status: 200 })
  t.ok(b.state(eps[2]!), 'a connection still open keeps it')
  conn()
  t.equal(b.state(eps[2]!), undefined, 'forgotten when both its requests and its connections have ended')

  const req3 = b.request(eps[1]!, 'ns/kept:80', eps, P2C)
  b.retain(snap({}))
  t.ok(b.state(eps[1]!), 'retired while in flight')
  b.retain(snap({ 'ns/kept:80': eps.slice(0, 2) }))
  req3({ latencyMs: 7, status: 200 })
  t.equal(b.state(eps[1]!)!.requests, 2, 'back in the snapshot: not forgotten when its request ends')
  b.retain(snap({}))
  t.equal(b.state(eps[1]!), undefined, 'idle and gone: forgotten at once')
  t.equal(b.requestRttMs(eps[1]!), undefined)
})
