// The admin endpoints of a real in-process daemon with real HBONE traffic through it
// (test/helpers/live-daemon.ts): every endpoint answers, /stats moves with connections,
// /clusters shows the snapshot's service ports, /logging changes the level at runtime, on the
// admin socket only.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { ClustersView } from '../../../daemon/admin/clusters.ts'
import type { StatsView } from '../../../daemon/admin/stats.ts'
import { LOG_LEVELS } from '../../../daemon/config/schema.ts'
import { adminRequest, until } from '../../helpers/admin.ts'
import { ID, liveDaemon } from '../../helpers/live-daemon.ts'

const inbound = (s: StatsView) => s.services.find((x) => x.direction === 'inbound' && x.service === 'echo.t')

t.test('every admin endpoint answers', async (t) => {
  const live = await liveDaemon(t)
  const endpoints = ['/healthz', '/ready', '/metrics', '/config_dump', '/certs', '/clusters', '/logging', '/stats']
  for (const path of endpoints) {
    const res = await fetch(`${live.base}${path}`)
    t.equal(res.status, 200, `${path} → 200`)
    t.match(res.headers.get('content-type'), path === '/metrics' ? /^text\/plain/ : /^application\/json/)
    await res.body?.cancel()
  }
  const missing = await live.getJson<{ endpoints: string[] }>('/nope')
  t.equal(missing.status, 404)
  t.same(missing.body.endpoints, [...endpoints].sort(), 'the 404 lists exactly these')
})

t.test('/stats: uptime, policy, identities, listeners, and per-service numbers that move with real connections', async (t) => {
  const live = await liveDaemon(t)
  let stats = (await live.getJson<StatsView>('/stats')).body
  t.match(stats, {
    node: 'node-a',
    policy: { generation: 1, files: 1, reloads: { success: 1, failure: 0 }, lastReload: { result: 'success', reason: 'start', problems: 0 }, lastError: null },
    rateWindowSeconds: 60,
  })
  t.ok(stats.uptimeSeconds >= 0 && Date.parse(stats.startedAt) <= Date.now())
  t.same(stats.identities.map((i) => [i.identity, i.state]), [[ID('client'), 'Available'], [ID('echo'), 'Available'], [ID('intruder'), 'Available']])
  t.ok(stats.identities.every((i) => i.expiresInSeconds! > 23 * 3600 && i.expiresInSeconds! <= 24 * 3600), 'expiry in the default 24 h leaf lifetime')
  t.same(stats.listeners.map((l) => l.name), ['admin', 'hbone', 'inbound-plaintext', 'outbound', 'outbound', 'outbound'])
  t.same(stats.listeners.filter((l) => l.name === 'outbound').map((l) => l.workload), ['t/client', 't/echo', 't/intruder'], 'by port')
  t.match(stats.listeners.find((l) => l.name === 'hbone'), { connections: 0, tunnels: 0 })
  t.equal(inbound(stats), undefined, 'no connection yet')

  // One tunnel held open: the listener counts it.
  const held = await live.open('client')
  held.on('error', () => undefined)
  await until(async () => (await live.getJson<StatsView>('/stats')).body.listeners.find((l) => l.name === 'hbone')!.tunnels === 1, 'the open tunnel')
  stats = (await live.getJson<StatsView>('/stats')).body
  t.match(stats.listeners.find((l) => l.name === 'hbone'), { connections: 1, tunnels: 1 }, 'one TLS connection carrying one tunnel')
  t.match(inbound(stats), { opened: 1, closed: 0, active: 1 })
  held.close()

  for (let i = 0; i < 3; i++) t.equal(await live.echo('client', 1000), 1000)
  await t.rejects(live.open('intruder'), { code: 'HOSTMESH_ERR_TUNNEL', status: 401 }, 'denied by AuthorizationPolicy')
  await until(async () => inbound((await live.getJson<StatsView>('/stats')).body)?.closed === 5, 'every connection closed')
  stats = (await live.getJson<StatsView>('/stats')).body
  t.match(inbound(stats), { opened: 5, closed: 5, active: 0, refused: 1, bytesSent: 3000, bytesReceived: 3000 })
  const rate = inbound(stats)!.rate!
  t.ok(rate.windowSeconds > 0 && rate.windowSeconds <= 60, `window ${rate.windowSeconds} s`)
  t.ok(rate.connectionsPerSecond > 0, `${rate.connectionsPerSecond} connections/s`)
  t.equal(rate.errorRate, 0.2, '1 of 5 refused')
  t.ok(Math.abs(rate.errorsPerSecond * 5 - rate.connectionsPerSecond) < 0.01, 'errors/s is a fifth of connections/s')
})

t.test('/stats shows a failed reload; /clusters follows the snapshot', async (t) => {
  const live = await liveDaemon(t)
  const clusters = (await live.getJson<ClustersView>('/clusters')).body
  t.equal(clusters.generation, 1)
  t.same(clusters.clusters.map((c) => c.name), ['t/echo:80'])
  t.match(clusters.clusters[0], {
    service: 'echo.t', port: 80, addresses: ['10.96.0.99:80'], external: false, loadBalancer: 'P2C_EWMA', destinationPolicy: 'default', route: null, activeConnections: 0,
    circuitBreakers: { maxConnections: { limit: 1024, current: 0, open: false }, maxPendingRequests: { limit: 1024, current: 0, open: false }, maxRequests: { limit: 1024, current: 0, open: false } },
    retryBudget: { percent: 20, minRetriesPerSecond: 10, ttlMs: 10_000, remaining: null },
    hosts: [{ workload: 't/echo', identity: ID('echo'), node: 'node-a', health: 'HEALTHY', ejectedUntil: null, consecutiveFailures: 0, consecutive5xx: 0, consecutiveGatewayErrors: 0, activeConnections: 0, connects: 0, ewmaConnectMs: null }],
  })
  t.same(clusters.otherConnections, [])

  writeFileSync(join(live.policyDir, 'broken.yaml'), 'apiVersion: hostmesh.io/v1alpha1\nkind: Service\nmetadata: {name: x, namespace: t}\nspec: {ports: []}\n')
  await live.daemon.policy.reload('test')
  const stats = (await live.getJson<StatsView>('/stats')).body
  t.match(stats.policy, { generation: 1, reloads: { failure: 1 }, lastReload: { result: 'failure', reason: 'test' }, lastError: { reason: 'test' } })
  t.ok(stats.policy.lastError!.problems > 0)
})

t.test('/logging: GET shows the level, POST changes it for every component at runtime', async (t) => {
  const live = await liveDaemon(t)
  const debugLines = () => live.logs.lines().filter((l) => l.msg === 'policy unchanged')
  t.same((await live.getJson('/logging')).body, { level: 'info', levels: LOG_LEVELS })
  await live.daemon.policy.reload('test')
  t.equal(debugLines().length, 0, 'at info, the policy component writes no debug line')

  const set = await adminRequest(live.socket, '/logging?level=debug', { method: 'POST' })
  t.same([set.status, set.body], [200, { level: 'debug', previous: 'info' }])
  t.same((await live.getJson<{ level: string }>('/logging')).body.level, 'debug')
  await live.daemon.policy.reload('test')
  t.match(debugLines(), [{ level: 'debug', component: 'policy', reason: 'test' }], 'now it does')
  t.match(live.logs.lines().find((l) => l.msg === 'log level changed through the admin port'), { level: 'info', component: 'admin', from: 'info', to: 'debug' })

  // Going quieter than info: the change itself is still logged (before it takes effect).
  await adminRequest(live.socket, '/logging?level=warn', { method: 'POST' })
  t.match(live.logs.lines().filter((l) => l.msg === 'log level changed through the admin port').at(-1), { level: 'info', from: 'debug', to: 'warn' })
  await live.daemon.policy.reload('test')
  t.equal(debugLines().length, 1, 'back to no debug lines')
})

t.test('/logging: POST on the TCP port is refused with the socket command; on the admin socket it works', async (t) => {
  const live = await liveDaemon(t)
  const port = Number(new URL(live.base).port)
  const refused = await adminRequest<{ error: string; socket: string; command: string }>(port, '/logging?level=silent', { method: 'POST' })
  t.equal(refused.status, 403)
  t.same(refused.body.socket, live.socket)
  t.equal(refused.body.command, `curl --unix-socket ${live.socket} -X POST 'http://localhost/logging?level=silent'`)
  t.match(refused.body.error, /POST \/logging changes the daemon's state, which the admin TCP port does not take[^]*only the daemon's user and root can open: curl --unix-socket /)
  t.equal(live.daemon.log.root.level, 'info', 'the level did not change')
  t.notOk(live.logs.lines().some((l) => l.msg === 'log level changed through the admin port'), 'nothing was changed, nothing logged')
  t.equal((await live.getJson<{ level: string }>('/logging')).body.level, 'info')

  // The command the 403 gives, as curl would send it.
  const done = await adminRequest<{ level: string }>(live.socket, '/logging?level=silent', { method: 'POST', headers: { host: 'localhost' } })
  t.same([done.status, done.body], [200, { level: 'silent', previous: 'info' }])
  t.equal(live.daemon.log.root.level, 'silent', 'the level changed')
  const read = await adminRequest<{ level: string }>(live.socket, '/logging')
  t.same([read.status, read.body.level], [200, 'silent'], 'GET is served on the socket too')
})

t.test('/logging: a bad or missing level is a 400 naming the parameter and the allowed values', async (t) => {
  const live = await liveDaemon(t)
  for (const [path, method, error] of [
    ['/logging', 'POST', /missing query parameter "level"/],
    ['/logging?level=loud', 'POST', /query parameter "level" is "loud"; expected one of fatal, error, warn, info, debug, trace, silent/],
    ['/logging?level=', 'POST', /query parameter "level" is ""/],
    ['/logging?level=debug', 'GET', /GET \/logging only shows the level; change it with POST \/logging\?level=/],
  ] as const) {
    const res = await adminRequest<{ error: string; parameter: string; allowed: string[] }>(live.socket, path, { method })
    t.equal(res.status, 400, `${method} ${path}`)
    t.match(res.body, { error, parameter: 'level', allowed: [...LOG_LEVELS] })
  }
  t.equal((await live.getJson<{ level: string }>('/logging')).body.level, 'info', 'unchanged')
})

t.test('/config_dump shows each resilience stage with its defaults filled in', async (t) => {
  const live = await liveDaemon(t)
  const V = 'apiVersion: hostmesh.io/v1alpha1\n'
  writeFileSync(join(live.policyDir, 'web.yaml'), [
    `${V}kind: Service\nmetadata: {name: web, namespace: t}\nspec: {addresses: [10.96.0.7], ports: [{name: http, port: 80, protocol: http}], endpoints: [{address: 127.0.0.1, port: 9}]}\n`,
    `${V}kind: DestinationPolicy\nmetadata: {name: web, namespace: t}\nspec: {targetRefs: [{name: web}], connectionPool: {maxRequests: 20}, rateLimit: {maxTokens: 100, fillInterval: 1s}}\n`,
    `${V}kind: HTTPRoute\nmetadata: {name: web, namespace: t}\nspec:\n  parentRefs: [{name: web}]\n  rules:\n    - retry: {}\n      timeouts: {request: 2s}\n      filters: [{type: Fault, fault: {delay: {fixedDelay: 10ms}}}]\n      backendRefs: [{name: web, port: 80}]\n`,
  ].join('---\n'))
  await live.daemon.policy.reload('test')
  type Dump = { policy: { generation: number; snapshot: { services: Record<string, { destination: unknown }>; servicePorts: Record<string, { route: { rules: unknown[] } }> } } }
  const dump = (await live.getJson<Dump>('/config_dump')).body
  t.equal(dump.policy.generation, 2)
  t.match(dump.policy.snapshot.services['t/web']?.destination, {
    connectionPool: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 20, connectTimeoutMs: 10_000 },
    outlierDetection: { consecutive5xxErrors: 5, consecutiveGatewayErrors: 0, baseEjectionTimeMs: 30_000, maxEjectionPercent: 10 },
    retryBudget: { percent: 20, minRetriesPerSecond: 10, ttlMs: 10_000 },
    rateLimit: { maxTokens: 100, tokensPerFill: 1, fillIntervalMs: 1000 },
  })
  t.match(dump.policy.snapshot.servicePorts['t/web:80']?.route.rules[0], {
    timeouts: { requestMs: 2000 },
    retry: { attempts: 2, codes: [500, 502, 503, 504], grpcStatuses: [14], backoffMs: 25, allowNonIdempotent: false },
    fault: { delay: { fixedDelayMs: 10, percent: 100 } },
  })
})
