// Per-service totals and rates from the Istio TCP counters, with a fake clock.
import { Registry } from 'prom-client'
import t from 'tap'
import { tcpMetrics, type TcpLabels } from '../../../daemon/metrics/istio-tcp.ts'
import { readTcpTotals, TcpRates } from '../../../daemon/metrics/tcp-rates.ts'

const labels = (reporter: string, service: string, workload = 'w', flags = '-'): TcpLabels => ({
  reporter, source_workload: workload, source_principal: 'unknown', destination_service: service, destination_workload: 'unknown',
  destination_principal: 'unknown', connection_security_policy: 'mutual_tls', response_flags: flags,
})

t.test('totals are summed per direction and service over every other label; refused = closed with a flag', async (t) => {
  const registry = new Registry()
  t.same([...await readTcpTotals(registry)], [], 'no counters registered yet')
  const m = tcpMetrics(registry)
  m.opened(labels('source', 'a.ns', 'w1'))
  m.opened(labels('source', 'a.ns', 'w2'))
  m.closed(labels('source', 'a.ns', 'w1'), 100, 200)
  m.refused(labels('source', 'a.ns', 'w', 'UF'))
  m.refused(labels('destination', 'a.ns', 'w', 'UAEX'))
  t.same(Object.fromEntries(await readTcpTotals(registry)), {
    'outbound\ta.ns': { opened: 3, closed: 2, refused: 1, sent: 100, received: 200 },
    'inbound\ta.ns': { opened: 1, closed: 1, refused: 1, sent: 0, received: 0 },
  })
})

t.test('rates compare with the oldest sample in the window; the window slides', async (t) => {
  let now = 0
  const registry = new Registry()
  const m = tcpMetrics(registry)
  const rates = new TcpRates(registry, () => now, 60_000)
  m.opened(labels('source', 'old.ns'))
  t.match(await rates.services(), [{ service: 'old.ns', rate: null }], 'no sample yet: no rate')
  await rates.sample()
  now = 10_000
  for (let i = 0; i < 8; i++) m.opened(labels('source', 'a.ns'))
  m.refused(labels('source', 'a.ns', 'w', 'UF'))
  m.refused(labels('source', 'a.ns', 'w', 'UF'))
  const [a, old] = await rates.services()
  t.match(a, { service: 'a.ns', direction: 'outbound', opened: 10, closed: 2, active: 8, refused: 2, rate: { windowSeconds: 10, connectionsPerSecond: 1, errorsPerSecond: 0.2, errorRate: 0.2 } })
  t.match(old, { service: 'old.ns', opened: 1, rate: { connectionsPerSecond: 0, errorRate: null } }, 'nothing new in the window')

  // Samples every 5 s; after 60 s the first ones fall out and the rate is over the last minute only.
  for (now = 15_000; now <= 70_000; now += 5_000) await rates.sample()
  now = 72_000
  m.opened(labels('source', 'a.ns'))
  t.match((await rates.services())[0], { service: 'a.ns', rate: { windowSeconds: 57, errorRate: 0 } }, 'the base is the sample at 15 s')
  t.equal((await rates.services())[0]!.rate!.connectionsPerSecond, Math.round(1000 / 57) / 1000)
})

t.test('start samples on a timer that stop() ends', async (t) => {
  const registry = new Registry()
  const m = tcpMetrics(registry)
  const rates = new TcpRates(registry, Date.now, 200)
  m.opened(labels('destination', 'x.ns'))
  rates.start(20)
  await new Promise((r) => setTimeout(r, 400))
  // Only samples the timer took in the last 200 ms count: all after the connection.
  t.match((await rates.services())[0], { opened: 1, rate: { connectionsPerSecond: 0 } }, 'the timer keeps sampling')
  rates.stop()
  await new Promise((r) => setTimeout(r, 400))
  t.equal((await rates.services())[0]!.rate, null, 'stopped: no sample in the window any more')
})
