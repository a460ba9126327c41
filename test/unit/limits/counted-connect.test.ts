// countedConnect: each upstream connection holds a `connections` slot of its service's circuit
// breaker from before the dial until it closes (or the dial fails), released exactly once; over
// the limit nothing is dialled and the caller gets UpstreamOverflow. Connections are real TCP
// connections to a loopback server.
import { connect as tcpConnect, createServer, type AddressInfo, type Socket } from 'node:net'
import { PassThrough, type Duplex } from 'node:stream'
import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { HostmeshError } from '../../../base/errors.ts'
import { CircuitBreakers } from '../../../daemon/limits/circuit-breaker.ts'
import { countedConnect } from '../../../daemon/limits/counted-connect.ts'
import { UpstreamOverflow } from '../../../daemon/limits/errors.ts'
import { LocalHostState } from '../../../daemon/limits/host-state.ts'
import { until } from '../../helpers/admin.ts'

async function setup(t: Test): Promise<{ breakers: CircuitBreakers; registry: Registry; dial: () => Promise<Duplex>; dials: () => number; accepted: Socket[] }> {
  const accepted: Socket[] = []
  const server = createServer((s) => { accepted.push(s); s.on('error', () => undefined) })
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  const { port } = server.address() as AddressInfo
  const mine: Socket[] = []
  t.teardown(() => { for (const s of [...mine, ...accepted]) s.destroy(); server.close() })
  let dials = 0
  const dial = (): Promise<Duplex> => new Promise((resolve, reject) => {
    dials++
    const s = tcpConnect({ host: '127.0.0.1', port }, () => resolve(s))
    mine.push(s)
    s.once('error', reject)
  })
  const registry = new Registry()
  return { breakers: new CircuitBreakers(new LocalHostState(), registry), registry, dial, dials: () => dials, accepted }
}

async function value(registry: Registry, name: string, resource = 'connections'): Promise<number | undefined> {
  const m = await registry.getSingleMetric(name)?.get()
  return m?.values.find((v) => v.labels.destination_service === 'api.shop' && v.labels.resource === resource)?.value
}

t.test('up to the limit the dial happens; over it, UpstreamOverflow at once and no dial', async (t) => {
  const s = await setup(t)
  const connect = countedConnect(s.breakers, 'api.shop', 2, s.dial)
  const a = await connect()
  await connect()
  t.equal(s.dials(), 2)
  t.equal(await value(s.registry, 'hostmesh_circuit_breaker_open'), 1, 'at the limit: the breaker is open')
  const err = await connect().then(() => undefined, (e: unknown) => e)
  t.ok(err instanceof UpstreamOverflow, 'refused with UpstreamOverflow')
  t.ok(err instanceof HostmeshError)
  t.match(err, { code: 'HOSTMESH_ERR_UPSTREAM_OVERFLOW', service: 'api.shop', resource: 'connections', limit: 2, message: "api.shop: over its circuit breaker's maxConnections (2)" })
  t.equal(s.dials(), 2, 'nothing was dialled for the refused one')
  t.equal(await value(s.registry, 'hostmesh_circuit_breaker_overflow_total'), 1)
  t.equal(s.accepted.length, 2, 'the server saw two connections')

  a.destroy()
  await new Promise((r) => a.once('close', r))
  t.equal(await value(s.registry, 'hostmesh_circuit_breaker_open'), 0, 'a connection closed: the breaker closes')
  await connect()
  t.equal(s.dials(), 3, 'and the next dial goes ahead')
  await t.rejects(connect(), UpstreamOverflow, 'the limit still holds')
})

t.test('the slot is taken before the dial: a second caller is refused while the first is still connecting', async (t) => {
  const s = await setup(t)
  let finish: (() => void) | undefined
  const slow = (): Promise<Duplex> => new Promise((resolve) => { finish = () => void s.dial().then(resolve) })
  const connect = countedConnect(s.breakers, 'api.shop', 1, slow)
  const first = connect()
  await t.rejects(connect(), { code: 'HOSTMESH_ERR_UPSTREAM_OVERFLOW' })
  finish!()
  const up = await first
  t.equal(s.dials(), 1)
  up.destroy()
})

t.test('a failed dial gives its slot back, and its error is the caller\'s', async (t) => {
  const s = await setup(t)
  const boom = new Error('connect ECONNREFUSED')
  let fail = true
  const connect = countedConnect(s.breakers, 'api.shop', 1, () => (fail ? Promise.reject(boom) : s.dial()))
  t.equal(await connect().then(() => undefined, (e: unknown) => e), boom, 'the dial\'s own error')
  fail = false
  const up = await connect()
  t.equal(s.dials(), 1, 'the slot was free again')
  up.destroy()
})

t.test('released exactly once per connection, even if close were reported twice', async (t) => {
  const s = await setup(t)
  const connect = countedConnect(s.breakers, 'api.shop', 2, s.dial)
  const a = await connect()
  await connect()
  a.destroy()
  await new Promise((r) => a.once('close', r))
  a.emit('close')
  await connect()
  await t.rejects(connect(), UpstreamOverflow, 'one slot came back, not two')
})

t.test('a stream that closed before it was handed over gives its slot back', async (t) => {
  const s = await setup(t)
  const dead = new PassThrough()
  dead.destroy()
  await new Promise((r) => dead.once('close', r))
  let first = true
  const connect = countedConnect(s.breakers, 'api.shop', 1, () => (first ? (first = false, Promise.resolve(dead)) : s.dial()))
  t.equal(await connect(), dead)
  const up = await connect()
  t.equal(s.dials(), 1, 'the closed stream held nothing')
  up.destroy()
})

t.test('a limit given as a function is read at each dial (a pool keeps its connect across reloads)', async (t) => {
  const s = await setup(t)
  let limit = 1
  const connect = countedConnect(s.breakers, 'api.shop', () => limit, s.dial)
  await connect()
  t.match(await connect().catch((e: unknown) => e), { code: 'HOSTMESH_ERR_UPSTREAM_OVERFLOW', limit: 1 })
  limit = 3
  await connect()
  await connect()
  t.match(await connect().catch((e: unknown) => e), { code: 'HOSTMESH_ERR_UPSTREAM_OVERFLOW', limit: 3 })
  t.equal(s.dials(), 3)
})

t.test('an upstream that closes the connection itself frees the slot', async (t) => {
  const s = await setup(t)
  const connect = countedConnect(s.breakers, 'api.shop', 1, s.dial)
  await connect()
  await until(() => s.accepted.length === 1, 'the server has the connection')
  s.accepted[0]!.destroy()
  let second: Duplex | undefined
  await until(async () => (second = await connect().catch(() => undefined)) !== undefined, 'a new connection fits once the server closed the first', 2000)
  t.equal(s.dials(), 2, 'dialled again once the first was gone')
  second!.destroy()
})
