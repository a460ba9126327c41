// Retries, retry budgets, per-try timeouts, L7 outlier ejection and gRPC retries/deadlines
// (#13) on two real hosts, against workload servers told how to fail and asked afterwards what
// they saw (/_stats from inside node-b, bypassing the mesh).
//   node-a  client (uid 2001): http-load.ts, curl, grpc-client.ts
//   node-b  web-1 (uid 2002): http-server.ts on 8080, grpc-server.ts on 50051
//           web-2 (uid 2003): http-server.ts on 8081
// Every HTTP Service selects both web workloads' `http` port (so it has two endpoints) and has
// a VIP of its own: the retry budget and the round-robin cursor are per destination service
// (port) on node-a, so each subtest starts with fresh ones. The balancer's per-endpoint state
// (peak-EWMA, outlier counts and ejection) is not: it belongs to the endpoint, whichever
// service reached it, so the subtests that depend on it say how they start clean. The greeter
// Service is web-1's `grpc` port.
import { join } from 'node:path'
import t from 'tap'
import type { LoadOutput as Load, Result as LoadResult } from '../../scripts/netns/workloads/http-load.ts'
import type { ServerStats } from '../../scripts/netns/workloads/http-server.ts'
import { percentile } from '../../scripts/bench/stats.ts'
import { testNet, type RunAs, type TestHost } from '../../scripts/netns/hosts.ts'
import { parseMetrics, total, type Sample } from '../../scripts/demo/telemetry.ts'
import { e2eSkip } from '../helpers/e2e.ts'
import { grpcWorkloads, WORKLOADS } from '../helpers/grpc-workloads.ts'
import { startMesh } from '../helpers/mesh-e2e.ts'

const SERVER = join(WORKLOADS, 'http-server.ts')
const LOAD = join(WORKLOADS, 'http-load.ts')
const NODE = process.execPath
const CLIENT: RunAs = { uid: 2001, gid: 2001 }
const WEB1: RunAs = { uid: 2002, gid: 2002 }
const WEB2: RunAs = { uid: 2003, gid: 2003 }
const PORT = { web1: 8080, web2: 8081 } as const
const VIP = { flaky: '10.96.2.10', down: '10.96.2.11', slowpair: '10.96.2.12', eject: '10.96.2.13', posts: '10.96.2.14', greeter: '10.96.2.20' } as const

/**
 * flaky: the budget for a service whose endpoints fail about a quarter of first tries (one of
 * two endpoints fails half its requests): 50% leaves room for the balancer's split to lean
 * towards the failing one, and is still half of the 100% that `attempts: 2` could add
 * against one endpoint failing every other try.
 */
const FLAKY_BUDGET = { percent: 50, minRetriesPerSecond: 1, ttlS: 10 }
/** down: Linkerd's 20%, with a floor small enough that the percentage is what bounds a run of a few seconds. */
const DOWN_BUDGET = { percent: 20, minRetriesPerSecond: 2, ttlS: 10 }
const DOWN_ATTEMPTS = 3
const DOWN_TIMEOUT_MS = 10_000
const PER_TRY_MS = 300
const SLOW_MS = 5000
const EJECT = { consecutive: 3, baseS: 2 }
const GRPC_ROUTE_TIMEOUT_MS = 300
const GRPC_DEADLINE_MS = 200

// The hosts' Node documents come from startMesh().
const POLICY = `apiVersion: hostmesh.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: rt, labels: {app: client}}
spec: {node: node-a, serviceAccount: client, match: {uid: 2001}}
---
apiVersion: hostmesh.io/v1alpha1
kind: Workload
metadata: {name: web-1, namespace: rt, labels: {app: web}}
spec:
  node: node-b
  serviceAccount: web
  match: {uid: 2002}
  ports: [{name: http, port: ${PORT.web1}}, {name: grpc, port: 50051}]
---
apiVersion: hostmesh.io/v1alpha1
kind: Workload
metadata: {name: web-2, namespace: rt, labels: {app: web}}
spec:
  node: node-b
  serviceAccount: web
  match: {uid: 2003}
  ports: [{name: http, port: ${PORT.web2}}]
---
${(['flaky', 'down', 'slowpair', 'eject', 'posts'] as const).map((s) => `apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: ${s}, namespace: rt}
spec: {addresses: [${VIP[s]}], ports: [{name: http, port: 80, protocol: http, targetPort: http}], selector: {app: web}}
---
`).join('')}apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: greeter, namespace: rt}
spec: {addresses: [${VIP.greeter}], ports: [{name: grpc, port: 50051, protocol: grpc, targetPort: grpc}], selector: {app: web}}
---
# Outlier detection off where a test counts tries: an ejection would change where they go.
apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: flaky, namespace: rt}
spec:
  parentRefs: [{name: flaky, port: 80}]
  rules:
    - backendRefs: [{name: flaky, port: 80}]
      retry: {attempts: 2, backoff: 5ms}
---
apiVersion: hostmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: flaky, namespace: rt}
spec:
  targetRefs: [{kind: Service, name: flaky}]
  outlierDetection: {consecutive5xxErrors: 0}
  retryBudget: {percent: ${FLAKY_BUDGET.percent}, minRetriesPerSecond: ${FLAKY_BUDGET.minRetriesPerSecond}, ttl: ${FLAKY_BUDGET.ttlS}s}
---
apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: posts, namespace: rt}
spec:
  parentRefs: [{name: posts, port: 80}]
  rules:
    - name: any-method
      matches: [{path: {type: PathPrefix, value: /any}}]
      backendRefs: [{name: posts, port: 80}]
      retry: {attempts: 2, backoff: 5ms, allowNonIdempotent: true}
    - name: default
      backendRefs: [{name: posts, port: 80}]
      retry: {attempts: 2, backoff: 5ms}
---
# Round robin where a few requests one at a time must reach both endpoints: P2C sends them
# all to whichever answered faster last (peak-EWMA, shared by every service of the endpoint).
apiVersion: hostmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: posts, namespace: rt}
spec:
  targetRefs: [{kind: Service, name: posts}]
  loadBalancer: {type: ROUND_ROBIN}
  outlierDetection: {consecutive5xxErrors: 0}
---
apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: down, namespace: rt}
spec:
  parentRefs: [{name: down, port: 80}]
  rules:
    - backendRefs: [{name: down, port: 80}]
      timeouts: {request: ${DOWN_TIMEOUT_MS}ms}
      retry: {attempts: ${DOWN_ATTEMPTS}, backoff: 5ms}
---
apiVersion: hostmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: down, namespace: rt}
spec:
  targetRefs: [{kind: Service, name: down}]
  outlierDetection: {consecutive5xxErrors: 0}
  retryBudget: {percent: ${DOWN_BUDGET.percent}, minRetriesPerSecond: ${DOWN_BUDGET.minRetriesPerSecond}, ttl: ${DOWN_BUDGET.ttlS}s}
---
apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: slowpair, namespace: rt}
spec:
  parentRefs: [{name: slowpair, port: 80}]
  rules:
    - backendRefs: [{name: slowpair, port: 80}]
      timeouts: {backendRequest: ${PER_TRY_MS}ms}
      retry: {attempts: 2, backoff: 5ms}
---
# Round robin: the slow endpoint keeps getting first tries (P2C would learn to avoid it).
apiVersion: hostmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: slowpair, namespace: rt}
spec:
  targetRefs: [{kind: Service, name: slowpair}]
  loadBalancer: {type: ROUND_ROBIN}
  outlierDetection: {consecutive5xxErrors: 0}
---
# eject: no HTTPRoute, so no retry.
apiVersion: hostmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: eject, namespace: rt}
spec:
  targetRefs: [{kind: Service, name: eject}]
  loadBalancer: {type: ROUND_ROBIN}
  outlierDetection: {consecutive5xxErrors: ${EJECT.consecutive}, baseEjectionTime: ${EJECT.baseS}s, maxEjectionPercent: 50}
---
apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: greeter, namespace: rt}
spec:
  parentRefs: [{name: greeter, port: 50051}]
  rules:
    - name: no-retry
      matches: [{headers: [{name: x-retry, value: "off"}]}]
      backendRefs: [{name: greeter, port: 50051}]
    - name: route-deadline
      matches: [{headers: [{name: x-deadline, value: route}]}]
      backendRefs: [{name: greeter, port: 50051}]
      timeouts: {request: ${GRPC_ROUTE_TIMEOUT_MS}ms}
    - name: default
      backendRefs: [{name: greeter, port: 50051}]
      retry: {attempts: 2, backoff: 5ms}
`

interface CallResult {
  readonly code: number
  readonly details: string
  readonly messages: readonly Record<string, unknown>[]
  readonly ms: number
}
interface ClusterHost { address: string; health: string; ejectedUntil?: string | null; ejections: number; consecutive5xx: number }
interface Cluster { name: string; hosts: ClusterHost[] }

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const countOf = <T>(xs: readonly T[], pred: (x: T) => boolean): number => xs.reduce((n, x) => n + (pred(x) ? 1 : 0), 0)
const byStatus = (rs: readonly LoadResult[]): Record<string, number> => {
  const out: Record<string, number> = {}
  for (const r of rs) out[r.status] = (out[r.status] ?? 0) + 1
  return out
}


t.test('retries, budgets, per-try timeouts, L7 ejection and gRPC through the mesh', { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: ['node-a', 'node-b'] })
  const mesh = await startMesh(t, net, 'l7-retry', POLICY)
  const [a, b] = [net.host('node-a'), net.host('node-b')]
  const bin = grpcWorkloads(t)
  const servers = [b.spawn([NODE, SERVER, 'web-1', String(PORT.web1)], WEB1), b.spawn([NODE, SERVER, 'web-2', String(PORT.web2)], WEB2)]
  const greeter = b.spawn([NODE, join(bin, 'grpc-server.ts'), 'greeter', '50051'], WEB1)
  for (const s of [...servers, greeter]) await s.waitFor(/listening/)
  // Thousands of access-log lines piped to this process would load the CPUs latencies are
  // measured on. The level changes on the admin socket only (docs/admin.md).
  await mesh.quiet()

  /** A server's control endpoint, from inside node-b as root: not captured, not in the mesh. */
  const control = async (port: number, what: '_stats' | '_reset' | '_config', query = ''): Promise<ServerStats> => {
    const r = await b.exec(['curl', '-fsS', '-m', '2', ...(what === '_stats' ? [] : ['-X', 'POST']), `http://127.0.0.1:${port}/${what}${query ? `?${query}` : ''}`])
    if (r.code !== 0) throw new Error(`${what} on :${port} failed: ${r.stderr}`)
    return JSON.parse(r.stdout) as ServerStats
  }
  /**
   * Both web servers' failure behaviour (http-server.ts query parameters) and zeroed counters.
   * Every key is given: POST /_config merges into the instance defaults, so a key left out
   * would keep the previous subtest's value.
   */
  const configure = async (web1: Record<string, string>, web2: Record<string, string>): Promise<void> => {
    const neutral = { fail: '0', failMode: 'every', status: '503', reset: '0', delay: '0' }
    for (const [port, q] of [[PORT.web1, web1], [PORT.web2, web2]] as const) {
      const want = { ...neutral, ...q }
      const got = await control(port, '_config', new URLSearchParams(want).toString()) as unknown as Record<string, string>
      if (JSON.stringify(got) !== JSON.stringify(want)) throw new Error(`:${port} took config ${JSON.stringify(got)}, not ${JSON.stringify(want)}`)
      await control(port, '_reset')
    }
  }
  const stats = async (): Promise<[ServerStats, ServerStats]> => [await control(PORT.web1, '_stats'), await control(PORT.web2, '_stats')]
  const load = async (opts: Record<string, unknown>): Promise<Load> => {
    const r = await a.exec([NODE, LOAD, JSON.stringify(opts)], { ...CLIENT, timeoutMs: 90_000 })
    if (r.code !== 0) throw new Error(`http-load failed (exit ${r.code}): ${r.stderr}`)
    return JSON.parse(r.stdout) as Load
  }
  const metrics = async (h: TestHost): Promise<Sample[]> => parseMetrics(await h.mustExec(['curl', '-fsS', '-m', '2', 'http://127.0.0.1:15000/metrics']))
  const retries = (m: readonly Sample[], service: string, result: string): number => total(m, 'hostmesh_retries_total', { destination_service: service, result })
  const cluster = async (name: string): Promise<Cluster> => {
    const body = JSON.parse(await a.mustExec(['curl', '-fsS', '-m', '2', 'http://127.0.0.1:15000/clusters'])) as { clusters: Cluster[] }
    const c = body.clusters.find((x) => x.name === name)
    if (!c) throw new Error(`no cluster ${name} in /clusters: ${body.clusters.map((x) => x.name).join(', ')}`)
    return c
  }
  /** Polls until `pred` holds (or ~2 s pass): a cancel reaches the server a moment after the client's answer. */
  const settled = async <T>(read: () => Promise<T>, pred: (v: T) => boolean): Promise<T> => {
    let v = await read()
    for (let i = 0; i < 40 && !pred(v); i++) {
      await sleep(50)
      v = await read()
    }
    return v
  }
  const FAIL_HALF = { fail: '0.5', status: '503' }

  await t.test('one of two endpoints fails half its requests: retries to the other hide it, within the budget', async (t) => {
    // Two endpoints, web-1 failing every other request (503), web-2 healthy: a failed first
    // try is retried on the endpoint not tried yet, web-2, which always answers, so every
    // request can succeed with about a quarter of them retried. (With one endpoint, each
    // retry would meet the same 50% again: half the requests retried once, a quarter twice,
    // an eighth failing after attempts: 2, and a budget of 75% needed for 99.9% to be in reach.)
    await configure(FAIL_HALF, {})
    const N = 2000
    const started = performance.now()
    const { results } = await load({ url: `http://${VIP.flaky}/get`, n: N, concurrency: 20 })
    const elapsedMs = performance.now() - started
    const [w1, w2] = await stats()
    t.equal(results.length, N)
    const ok = countOf(results, (r) => r.status === 200)
    t.ok(ok >= N * 0.999, `${ok} of ${N} succeeded (≥ 99.9%): ${JSON.stringify(byStatus(results))}`)
    const tries = w1.requests + w2.requests
    // Linkerd's bound over each ttl window: percent of the requests plus the floor; a run
    // longer than ttl gets the floor once per window.
    const windows = Math.ceil(elapsedMs / 1000 / FLAKY_BUDGET.ttlS)
    const bound = N + (FLAKY_BUDGET.percent / 100) * N + FLAKY_BUDGET.minRetriesPerSecond * FLAKY_BUDGET.ttlS * windows
    t.ok(tries <= bound, `the servers saw ${tries} tries for ${N} requests in ${(elapsedMs / 1000).toFixed(1)} s: within the budget's ${bound} (attempts: 2 alone would allow ${3 * N})`)
    t.ok(w1.failed > 0 && w2.failed === 0, `web-1 failed ${w1.failed} of its ${w1.requests} tries, web-2 none of its ${w2.requests}`)
    t.equal(tries - N, w1.failed - (N - ok), 'each failure was retried once (but those the client got), and nothing else was')
    t.equal(countOf(results, (r) => r.server === 'web-1' && r.status === 200), w1.requests - w1.failed, 'web-1\'s successes reached the client')
    t.equal(countOf(results, (r) => r.server === 'web-2'), w2.requests, 'and web-2\'s, retries included')
    t.same(w1.byAttempt, { 1: w1.requests }, 'web-1 saw first tries only (x-hostmesh-attempt-count: 1)')
    t.same(w2.byAttempt, { 1: w2.requests - w1.failed, 2: w1.failed }, 'each of web-1\'s failures was retried on web-2 (x-hostmesh-attempt-count: 2)')
  })

  await t.test('a POST is retried only when the rule allows every method', async (t) => {
    await configure(FAIL_HALF, {})
    const N = 20
    const plain = await load({ url: `http://${VIP.posts}/post`, method: 'POST', bodyBytes: 1024, n: N })
    let [w1, w2] = await stats()
    t.equal(w1.requests + w2.requests, N, `${N} POSTs under the default rule: ${N} tries, none retried (web-1 ${w1.requests}, web-2 ${w2.requests})`)
    t.ok(w1.failed > 0, `web-1 failed some of them (${w1.failed})`)
    t.equal(countOf(plain.results, (r) => r.status === 503), w1.failed, 'and each failure reached the client as the 503 it was')

    await configure(FAIL_HALF, {})
    const any = await load({ url: `http://${VIP.posts}/any/post`, method: 'POST', bodyBytes: 1024, n: N })
    ;[w1, w2] = await stats()
    t.same(byStatus(any.results), { 200: N }, 'allowNonIdempotent: every POST succeeded')
    t.ok(w1.failed > 0, `web-1 failed some first tries (${w1.failed})`)
    t.equal(w1.requests + w2.requests, N + w1.failed, 'each failure retried once')
    const sha = any.bodySha256
    const bodies = [...w1.bodies, ...w2.bodies]
    t.equal(bodies.length, w1.requests + w2.requests)
    t.equal(countOf(bodies, (x) => x.bytes === 1024 && x.sha256 === sha), bodies.length, 'every body the servers got, the replays included, intact')
  })

  await t.test('a 100 KiB POST body is not retried and arrives intact', async (t) => {
    await configure(FAIL_HALF, {})
    const N = 10
    const SIZE = 100 * 1024
    const { results, bodySha256: sha } = await load({ url: `http://${VIP.posts}/any/big`, method: 'POST', bodyBytes: SIZE, n: N })
    const [w1, w2] = await stats()
    t.equal(w1.requests + w2.requests, N, `${N} tries for ${N} POSTs under allowNonIdempotent: none retried (web-1 ${w1.requests}, web-2 ${w2.requests})`)
    t.ok(w1.failed > 0, `web-1 failed some (${w1.failed})`)
    t.equal(countOf(results, (r) => r.status === 503), w1.failed, 'those reached the client as 503s')
    t.equal(countOf(results, (r) => r.status === 200), N - w1.failed, 'the others succeeded')
    const bodies = [...w1.bodies, ...w2.bodies]
    t.equal(bodies.length, N)
    t.equal(countOf(bodies, (x) => x.bytes === SIZE && x.sha256 === sha), N, 'every body arrived whole (sha256 matches)')
  })

  await t.test('every endpoint failing: the retries stay within the budget and the client fails fast', async (t) => {
    await configure({ fail: '1' }, { fail: '1' })
    const before = await metrics(a)
    const started = performance.now()
    // Requests for 3 s at 20 at a time, every one answered 503 by whichever endpoint gets it.
    const { results } = await load({ url: `http://${VIP.down}/down`, n: 100_000, concurrency: 20, maxMs: 3000 })
    const elapsedMs = performance.now() - started
    const after = await metrics(a)
    const [w1, w2] = await stats()
    const N = results.length
    t.ok(N >= 500, `${N} requests in ${(elapsedMs / 1000).toFixed(1)} s`)
    t.same(byStatus(results), { 503: N }, 'each got the 503')
    t.equal(w1.failed + w2.failed, w1.requests + w2.requests, 'the servers failed every try')
    const retried = w1.requests + w2.requests - N
    const windows = Math.ceil(elapsedMs / 1000 / DOWN_BUDGET.ttlS)
    const allowed = (DOWN_BUDGET.percent / 100) * N + DOWN_BUDGET.minRetriesPerSecond * DOWN_BUDGET.ttlS * windows
    t.ok(retried <= allowed, `the servers saw ${retried} retries for ${N} requests: within ${DOWN_BUDGET.percent}% + ${DOWN_BUDGET.minRetriesPerSecond}/s × ${DOWN_BUDGET.ttlS} s = ${allowed.toFixed(0)} (attempts: ${DOWN_ATTEMPTS} alone would allow ${DOWN_ATTEMPTS * N})`)
    t.ok(retried >= (DOWN_BUDGET.percent / 100) * N * 0.9, `and the budget was used, not idle (${retried} retries)`)
    const ms = results.map((r) => r.ms)
    t.ok(percentile(ms, 0.99) < DOWN_TIMEOUT_MS / 10, `failures come fast: p50 ${percentile(ms, 0.5)} ms, p99 ${percentile(ms, 0.99)} ms (under a tenth of the ${DOWN_TIMEOUT_MS} ms request timeout), max ${percentile(ms, 1)} ms`)
    const delta = (result: string): number => retries(after, 'down.rt', result) - retries(before, 'down.rt', result)
    t.ok(delta('budget_exhausted') > 0, `hostmesh_retries_total{result="budget_exhausted"} on node-a: ${delta('budget_exhausted')}`)
    t.equal(delta('failure'), retried, 'hostmesh_retries_total{result="failure"} counts the retries sent, each failed')
    t.equal(delta('success'), 0, 'none succeeded')
    t.equal(delta('budget_exhausted') + delta('limit'), N, 'every request ended refused by the budget or out of attempts')
  })

  await t.test(`per-try timeout ${PER_TRY_MS} ms plus retry on a slow-then-healthy pair`, async (t) => {
    await configure({ delay: String(SLOW_MS) }, {})
    const N = 20
    const { results } = await load({ url: `http://${VIP.slowpair}/pair`, n: N, concurrency: 4 })
    t.same(byStatus(results), { 200: N }, 'every request succeeded')
    t.equal(countOf(results, (r) => r.server === 'web-2'), N, 'each answered by web-2, the fast one')
    const ms = results.map((r) => r.ms)
    t.ok(percentile(ms, 1) < 1000, `all well under ${SLOW_MS} ms: p50 ${percentile(ms, 0.5)} ms, max ${percentile(ms, 1)} ms`)
    const [w1, w2] = await settled(stats, ([s]) => s.cancelled >= s.requests && s.inFlight === 0)
    t.ok(w1.requests >= 3, `the slow one got first tries (${w1.requests})`)
    t.equal(w1.cancelled, w1.requests, 'and saw each of them cancelled')
    t.same(w1.byStatus, {}, 'it never answered')
    t.equal(countOf(results, (r) => r.ms >= PER_TRY_MS), w1.requests, `exactly the requests that tried it first took ≥ ${PER_TRY_MS} ms`)
    t.equal(w2.requests, N, 'web-2 got one try per request: the retries of the slow one\'s, and the rest')
    await configure({}, {})
  })

  await t.test(`L7 ejection after ${EJECT.consecutive} consecutive 5xx, and the return after recovery`, async (t) => {
    const web1 = `10.77.0.12:${PORT.web1}`
    // Outlier state belongs to the endpoint, whichever service reached it: the earlier subtests
    // left web-1 with a run of failures (under services with detection off) that one more
    // would complete here. A success resets it; round robin gives web-1 one of the two.
    await configure({}, {})
    t.same(byStatus((await load({ url: `http://${VIP.eject}/warm`, n: 2, concurrency: 1 })).results), { 200: 2 }, 'warm-up: both endpoints answer')
    let c = await cluster('rt/eject:80')
    t.match(c.hosts.find((h) => h.address === web1), { health: 'HEALTHY', consecutive5xx: 0 }, 'web-1 starts healthy, with no run of failures')

    await configure({ fail: '1' }, {})
    const N = 30
    // One at a time: no request is in flight to web-1 when its third failure ejects it.
    const first = await load({ url: `http://${VIP.eject}/e`, n: N, concurrency: 1 })
    c = await cluster('rt/eject:80')
    let [w1, w2] = await stats()
    t.equal(w1.requests, EJECT.consecutive, `web-1 got ${w1.requests} requests before it was ejected`)
    const failedAt = first.results.map((r, i) => (r.status === 503 ? i : -1)).filter((i) => i >= 0)
    t.equal(failedAt.length, EJECT.consecutive, `the client saw its ${EJECT.consecutive} 503s (at ${failedAt.join(', ')})`)
    const last = failedAt.at(-1) ?? N
    t.equal(countOf(first.results.slice(last + 1), (r) => r.status === 200 && r.server === 'web-2'), N - 1 - last, 'after the last one every request went to web-2')
    t.equal(w2.requests, N - EJECT.consecutive)
    const host = (addr: string): ClusterHost | undefined => c.hosts.find((h) => h.address === addr)
    t.match(host(web1), { health: 'EJECTED', ejections: 1 }, `/clusters: web-1 EJECTED (${JSON.stringify(c.hosts)})`)
    t.match(host(`10.77.0.12:${PORT.web2}`), { health: 'HEALTHY' }, 'web-2 HEALTHY')

    await configure({}, {})
    const until = Date.parse(host(web1)?.ejectedUntil ?? '')
    t.ok(Number.isFinite(until), `ejectedUntil ${host(web1)?.ejectedUntil}`)
    await sleep(Math.max(0, until - Date.now()) + 200)
    const again = await load({ url: `http://${VIP.eject}/e`, n: 20, concurrency: 1 })
    ;[w1, w2] = await stats()
    t.same(byStatus(again.results), { 200: 20 }, 'after recovery and the ejection time, every request succeeds')
    t.ok(w1.requests >= 5, `and web-1 gets its share of traffic again (${w1.requests} of 20)`)
    t.match((await cluster('rt/eject:80')).hosts.find((h) => h.address === web1), { health: 'HEALTHY' }, '/clusters: web-1 HEALTHY again')
  })

  await t.test('gRPC: UNAVAILABLE is retried; deadlines are honoured and the server sees the cancel', async (t) => {
    const call = async (method: string, request: object, metadata: Record<string, string>, deadlineMs = 8000): Promise<CallResult> => {
      const r = await a.exec([NODE, join(bin, 'grpc-client.ts'), `${VIP.greeter}:50051`, method, JSON.stringify(request), JSON.stringify(metadata), String(deadlineMs)], { ...CLIENT, timeoutMs: 15_000 })
      const line = r.stdout.trim().split('\n').at(-1) ?? ''
      try {
        return JSON.parse(line) as CallResult
      } catch {
        throw new Error(`grpc-client printed no result (exit ${r.code}): ${r.stdout}${r.stderr}`)
      }
    }
    const lines = (re: RegExp): string[] => greeter.output.split('\n').filter((l) => re.test(l))
    /** "REQ Flaky <id> <try> <attempt>" lines of one call, as [try, attempt]. */
    const flaky = (id: string): string[][] => lines(new RegExp(`^REQ Flaky ${id} `)).map((l) => l.split(' ').slice(3))

    const before = await metrics(a)
    const ok = await call('Flaky', {}, { 'x-call-id': 'c1' })
    const after = await metrics(a)
    t.equal(ok.code, 0, `retried: OK (${ok.details})`)
    t.match(ok.messages, [{ server: 'greeter', id: 'c1', tries: 2 }], 'the second try answered')
    t.same(flaky('c1').map(([n]) => n), ['1', '2'], 'the server saw two tries')
    t.same(flaky('c1').map(([, attempt]) => attempt), ['1', '2'], 'x-hostmesh-attempt-count 1, then 2')
    t.equal(retries(after, 'greeter.rt', 'success') - retries(before, 'greeter.rt', 'success'), 1, 'hostmesh_retries_total{result="success"}')

    const off = await call('Flaky', {}, { 'x-call-id': 'c2', 'x-retry': 'off' })
    t.equal(off.code, 14, `without retry: the first try's UNAVAILABLE (${off.details})`)
    t.same(flaky('c2').map(([n]) => n), ['1'], 'one try')

    const slowBefore = lines(/^REQ Slow$/).length
    const cancelledBefore = lines(/^CANCELLED Slow$/).length
    const cancels = async (n: number): Promise<number> => settled(async () => lines(/^CANCELLED Slow$/).length, (k) => k >= n)
    const late = await call('Slow', { ms: SLOW_MS }, {}, GRPC_DEADLINE_MS)
    t.equal(late.code, 4, `a ${GRPC_DEADLINE_MS} ms deadline: DEADLINE_EXCEEDED (${late.details})`)
    t.ok(late.ms >= GRPC_DEADLINE_MS && late.ms <= GRPC_DEADLINE_MS * 1.1 + 50, `after ${late.ms} ms: within 10% of ${GRPC_DEADLINE_MS} ms, plus 50 ms of scheduling`)
    t.equal(await cancels(cancelledBefore + 1), cancelledBefore + 1, 'the server saw the call cancelled')
    t.equal(lines(/^REQ Slow$/).length, slowBefore + 1, 'and no retry of it')

    // The route's own request timeout, with a client that would wait 8 s: hostmesh ends it.
    const routed = await call('Slow', { ms: SLOW_MS }, { 'x-deadline': 'route' })
    t.equal(routed.code, 4, `the route's ${GRPC_ROUTE_TIMEOUT_MS} ms timeout: DEADLINE_EXCEEDED from hostmesh (${routed.details})`)
    t.match(routed.details, /upstream request timeout/, 'hostmesh\'s answer, not the client\'s deadline')
    t.ok(routed.ms >= GRPC_ROUTE_TIMEOUT_MS * 0.9 && routed.ms <= GRPC_ROUTE_TIMEOUT_MS * 1.1 + 50, `after ${routed.ms} ms: within 10% of ${GRPC_ROUTE_TIMEOUT_MS} ms, plus 50 ms of scheduling`)
    t.equal(await cancels(cancelledBefore + 2), cancelledBefore + 2, 'the server saw that call cancelled too')
  })
})
