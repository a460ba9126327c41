// The source host's breaker stage (daemon/l4/stages/breaker.ts) behind the real tcp-route:
// a tcp service port's connections hold a `connections` slot of the destination service until
// they end, however they end; over maxConnections the workload's connection is reset at once,
// recorded with flag UO, counted, and logged at most once per window. The workload's
// connections are real loopback TCP connections; the snapshot is compiled from policy text.
import type { Socket } from 'node:net'
import pino from 'pino'
import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { pipeline } from '../../../base/stage.ts'
import type { OutboundConnection } from '../../../daemon/l4/outbound-connection.ts'
import { breaker } from '../../../daemon/l4/stages/breaker.ts'
import { tcpRoute } from '../../../daemon/l4/stages/tcp-route.ts'
import { CircuitBreakers } from '../../../daemon/limits/circuit-breaker.ts'
import { LocalHostState } from '../../../daemon/limits/host-state.ts'
import { tcpMetrics } from '../../../daemon/metrics/istio-tcp.ts'
import { ConnectionTelemetry } from '../../../daemon/telemetry/connection.ts'
import { defaultDestination } from '../../../policy/compile.ts'
import { addressKey } from '../../../policy/ip.ts'
import { hashFiles } from '../../../policy/load.ts'
import { buildSnapshot } from '../../../policy/pipeline.ts'
import type { Snapshot } from '../../../policy/snapshot.ts'
import { until } from '../../helpers/admin.ts'
import { logSink } from '../../helpers/log-sink.ts'
import { tcpPair } from '../../helpers/ports.ts'

const V = 'apiVersion: hostmesh.io/v1alpha1\n'

function compile(): Snapshot {
  const text = [
    `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n`,
    `${V}kind: Workload\nmetadata: {name: client, namespace: t}\nspec: {node: node-a, serviceAccount: client, match: {uid: 5001}}\n`,
    `${V}kind: Workload\nmetadata: {name: api, namespace: t, labels: {app: api}}\nspec: {node: node-a, serviceAccount: api, match: {uid: 5002}, addresses: [127.0.0.2], ports: [{port: 7000}]}\n`,
    `${V}kind: Service\nmetadata: {name: api, namespace: t}\nspec: {addresses: [10.96.0.1], selector: {app: api}, ports: [{port: 7000, protocol: tcp}]}\n`,
    `${V}kind: DestinationPolicy\nmetadata: {name: api, namespace: t}\nspec: {targetRefs: [{name: api}], connectionPool: {maxConnections: 2}}\n`,
  ].join('---\n')
  const files = [{ path: 'p.yaml', text, sha256: 'x' }]
  const r = buildSnapshot({ dir: 'd', missing: false, files, hash: hashFiles(files), problems: [] }, { generation: 1, trustDomain: 'cluster.local', localNode: 'node-a' })
  if (!r.ok) throw new Error(r.problems.map((p) => p.message).join('; '))
  return r.snapshot
}

interface Conn {
  /** The workload's end. */
  readonly client: Socket
  /** hostmesh's end, as the outbound listener accepted it. */
  readonly socket: Socket
  readonly x: OutboundConnection
  /** The path went past the breaker. */
  passed: boolean
  /** The client's socket closed, and when (ms after the path ran). */
  closedAfterMs?: number
  clientError?: string
}

async function setup(t: Test) {
  const snap = compile()
  const sink = logSink()
  const log = pino({ level: 'info' }, sink.dest)
  const registry = new Registry()
  const telemetry = new ConnectionTelemetry(tcpMetrics(new Registry()), log)
  const breakers = new CircuitBreakers(new LocalHostState(), registry)
  const passed = new Set<OutboundConnection>()
  // What stands for endpoint and splice: the connection goes on, or (`fail`) a later stage refuses it.
  let later: 'hold' | 'fail' = 'hold'
  const run = pipeline<OutboundConnection>([tcpRoute, breaker(breakers, log), (x) => {
    passed.add(x)
    if (later === 'fail') {
      x.record.refuse('UF', 'no endpoint reachable')
      x.socket.resetAndDestroy()
    } else {
      // As splice does: the workload's end of stream ends hostmesh's side too.
      x.record.open()
      x.socket.once('end', () => x.socket.end())
    }
  }])
  const source = snap.workloads.get('t/client')!
  const conns: Conn[] = []
  t.teardown(() => { for (const c of conns) { c.client.destroy(); c.socket.destroy() } })
  const open = async (kind: 'service' | 'workload' = 'service', before?: (socket: Socket) => Promise<void>): Promise<Conn> => {
    const [client, socket] = await tcpPair()
    client.on('error', (e: NodeJS.ErrnoException) => { c.clientError = e.code ?? e.message })
    socket.on('error', () => undefined)
    const record = telemetry.begin({ reporter: 'source', listener: 'outbound', src: { workload: source, principal: source.identity }, dst: {}, security: 'none' })
    const x: OutboundConnection = { socket, source, capturePort: 15001, record, log, snapshot: snap }
    if (kind === 'service') {
      x.dst = { address: '10.96.0.1', port: 7000 }
      x.destination = { kind: 'service', port: snap.byDestination.get(addressKey('10.96.0.1', 7000))! }
    } else {
      // A mesh workload dialled at its own address, as lookup.ts makes it: named like the Service.
      x.dst = { address: '127.0.0.2', port: 7000 }
      x.destination = { kind: 'workload' }
      x.target = { key: 'workload:t/api:7000', service: 'api.t', settings: defaultDestination(), endpoints: [] }
    }
    const c: Conn = { client, socket, x, passed: false }
    conns.push(c)
    if (before) await before(socket)
    const t0 = performance.now()
    client.once('close', () => { c.closedAfterMs = performance.now() - t0 })
    await run(x)
    c.passed = passed.has(x)
    return c
  }
  const metric = async (name: string): Promise<number | undefined> => {
    const m = await registry.getSingleMetric(name)?.get()
    return m?.values.find((v) => v.labels.destination_service === 'api.t' && v.labels.resource === 'connections')?.value
  }
  const records = () => sink.lines().filter((l) => l.msg === 'connection')
  const warnings = () => sink.lines().filter((l) => typeof l.msg === 'string' && l.msg.startsWith('connection refused: the destination service is at'))
  return { open, metric, records, warnings, logs: sink.lines, setLater: (v: 'hold' | 'fail') => { later = v } }
}

t.test('up to maxConnections the connections go on and stay; the next is reset at once, UO, counted and logged', async (t) => {
  const s = await setup(t)
  const a = await s.open()
  const b = await s.open()
  t.ok(a.passed && b.passed, 'the first two go on')
  t.equal(await s.metric('hostmesh_circuit_breaker_open'), 1, 'at the limit: open')
  const c = await s.open()
  t.notOk(c.passed, 'the third does not reach the endpoint stage')
  await until(() => c.closedAfterMs !== undefined, 'the refused connection to close')
  t.ok(c.closedAfterMs! < 500, `closed at once (${Math.round(c.closedAfterMs!)} ms)`)
  t.equal(c.clientError, 'ECONNRESET', 'reset, not a clean end')
  t.equal(a.closedAfterMs, undefined, 'the held ones stay open')
  t.equal(b.closedAfterMs, undefined)
  t.equal(await s.metric('hostmesh_circuit_breaker_overflow_total'), 1)
  const refused = s.records().filter((l) => l.responseFlags === 'UO')
  t.equal(refused.length, 1, 'one record, flag UO')
  t.match(refused[0], { dst: { service: 'api.t' }, error: "api.t: over its circuit breaker's maxConnections (2)", bytesSent: 0 })
  t.match(s.warnings(), [{ level: 40, service: 'api.t', maxConnections: 2, workload: 't/client' }], 'one warning line')
})

t.test('the slot is held until the connection ends, whichever side ends it, and released once', async (t) => {
  const s = await setup(t)
  const a = await s.open()
  const b = await s.open()
  t.notOk((await s.open()).passed, 'full')
  a.client.destroy()
  await until(() => a.socket.closed, 'hostmesh\'s end to close')
  t.equal(await s.metric('hostmesh_circuit_breaker_open'), 0, 'the breaker closes')
  t.ok((await s.open()).passed, 'the workload closed one: a new one fits')
  t.notOk((await s.open()).passed, 'and only one')
  b.socket.destroy()
  await until(() => b.socket.closed, 'closed')
  b.socket.emit('close')
  t.ok((await s.open()).passed, 'hostmesh closed one: a new one fits')
  t.notOk((await s.open()).passed, 'one slot per close, however many times close is heard')
})

t.test('a connection a later stage refuses gives its slot back', async (t) => {
  const s = await setup(t)
  s.setLater('fail')
  for (let i = 0; i < 4; i++) {
    const c = await s.open()
    t.ok(c.passed, `connection ${i + 1} reaches the later stage`)
    await until(() => c.socket.closed, 'the refused connection to close')
  }
  t.equal(s.records().filter((l) => l.responseFlags === 'UF').length, 4, 'each refused by the later stage, UF')
  t.equal(await s.metric('hostmesh_circuit_breaker_overflow_total'), undefined, 'none refused by the breaker')
  s.setLater('hold')
  t.ok((await s.open()).passed)
  t.ok((await s.open()).passed, 'both slots are free again')
})

t.test('a connection that closed while earlier stages ran holds no slot', async (t) => {
  const s = await setup(t)
  const gone = await s.open('service', async (socket) => {
    socket.destroy()
    await new Promise((r) => socket.once('close', r))
  })
  t.ok(gone.passed, 'it goes on (the endpoint stage reports it as DC)')
  t.ok((await s.open()).passed)
  t.ok((await s.open()).passed, 'both slots are still free')
})

t.test('many refusals: one warning line per window, every one recorded and counted', async (t) => {
  const s = await setup(t)
  await s.open()
  await s.open()
  for (let i = 0; i < 10; i++) t.notOk((await s.open()).passed)
  t.equal(await s.metric('hostmesh_circuit_breaker_overflow_total'), 10)
  t.equal(s.records().filter((l) => l.responseFlags === 'UO').length, 10)
  t.equal(s.warnings().length, 1, 'logged once')
})

t.test('a mesh workload dialled at its own address is not a destination service: not counted', async (t) => {
  const s = await setup(t)
  const a = await s.open()
  await s.open()
  for (let i = 0; i < 3; i++) t.ok((await s.open('workload')).passed, 'goes on while the Service of the same name is full')
  t.equal(await s.metric('hostmesh_circuit_breaker_overflow_total'), undefined)
  a.client.destroy()
  await until(() => a.socket.closed, 'closed')
  t.ok((await s.open()).passed, 'the Service\'s count holds only its own connections')
})
