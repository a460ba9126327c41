// countedConnect under the request path's real upstream pool (daemon/l7/pool.ts) with real
// HTTP/1.1 and h2c servers on loopback: the pool never holds more connections to a service
// than its maxConnections, a request that would need one more fails with the UpstreamOverflow
// itself (so the request path can answer 503 UO), and the slots come back when the pool's
// connections close.
import { createServer as createH1Server } from 'node:http'
import http2 from 'node:http2'
import { connect as tcpConnect, type AddressInfo, type Server } from 'node:net'
import type { Duplex } from 'node:stream'
import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { UpstreamPool } from '../../daemon/l7/pool.ts'
import { CircuitBreakers } from '../../daemon/limits/circuit-breaker.ts'
import { countedConnect } from '../../daemon/limits/counted-connect.ts'
import { UpstreamOverflow } from '../../daemon/limits/errors.ts'
import { LocalHostState } from '../../daemon/limits/host-state.ts'
import { until } from '../helpers/admin.ts'

async function listen(t: Test, server: Server): Promise<{ port: number; open: () => number; most: () => number }> {
  let open = 0
  let most = 0
  server.on('connection', (s) => { open++; most = Math.max(most, open); s.once('close', () => open--) })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  t.teardown(() => server.close())
  return { port: (server.address() as AddressInfo).port, open: () => open, most: () => most }
}

const dial = (port: number) => (): Promise<Duplex> => new Promise((resolve, reject) => {
  const s = tcpConnect({ host: '127.0.0.1', port }, () => resolve(s))
  s.once('error', reject)
})

async function openGauge(registry: Registry): Promise<number | undefined> {
  const m = await registry.getSingleMetric('hostmesh_circuit_breaker_open')?.get()
  return m?.values.find((v) => v.labels.resource === 'connections')?.value
}

t.test('HTTP/1.1 pool: at most maxConnections to the server; the excess request fails with UpstreamOverflow', async (t) => {
  const h1 = createH1Server((_req, res) => void setTimeout(() => res.end('ok'), 200))
  const srv = await listen(t, h1)
  const registry = new Registry()
  const breakers = new CircuitBreakers(new LocalHostState(), registry)
  const pool = new UpstreamPool()
  t.teardown(() => pool.destroy())
  const d = pool.dispatcher('k', `127.0.0.1:${srv.port}`, countedConnect(breakers, 'api.t', 2, dial(srv.port)))
  const results = await Promise.all(Array.from({ length: 5 }, () => d.request({ method: 'GET', path: '/' }).then(async (r) => `${r.statusCode} ${await r.body.text()}`, (e: unknown) => e)))
  t.same(results.filter((r) => r === '200 ok').length, 2, 'two requests were served')
  const refused = results.filter((r) => r instanceof UpstreamOverflow)
  t.equal(refused.length, 3, 'the other three failed with the UpstreamOverflow itself')
  t.match(refused[0], { code: 'HOSTMESH_ERR_UPSTREAM_OVERFLOW', service: 'api.t', limit: 2 })
  t.equal(srv.most(), 2, 'the server never had more than two connections')
  t.equal(await openGauge(registry), 1)
  pool.destroy()
  await until(async () => (await openGauge(registry)) === 0 && srv.open() === 0, 'the pool\'s connections to close and give their slots back')
  t.ok(breakers.acquire('api.t', 'connections', 2) && breakers.acquire('api.t', 'connections', 2), 'both slots are free')
})

t.test('h2c session: opening one over the limit fails with UpstreamOverflow; one session is one connection', async (t) => {
  const h2 = http2.createServer((_req, res) => res.end('ok'))
  const srv = await listen(t, h2 as unknown as Server)
  const breakers = new CircuitBreakers(new LocalHostState(), new Registry())
  const pool = new UpstreamPool()
  t.teardown(() => pool.destroy())
  const connect = countedConnect(breakers, 'api.t', 1, dial(srv.port))
  const session = await pool.session('a', `127.0.0.1:${srv.port}`, connect)
  t.equal(await pool.session('a', `127.0.0.1:${srv.port}`, connect), session, 'the same key reuses the session: no new slot')
  await t.rejects(pool.session('b', `127.0.0.1:${srv.port}`, connect), UpstreamOverflow, 'another session would be a second connection')
  t.equal(srv.most(), 1, 'the server never had more than one connection')
  session.destroy()
  await until(async () => await pool.session('b', `127.0.0.1:${srv.port}`, connect).then(() => true, () => false), 'the closed session to give its slot back')
  t.pass('a new session opens once the first is closed')
})
