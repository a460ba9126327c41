// Worker threads (docs/workers.md) in a real in-process daemon with real HBONE traffic
// (test/helpers/live-daemon.ts), `workers: 2`: the main thread's data plane and one worker
// thread accept on the same ports; /metrics, /stats and /clusters add up both; a policy
// change reaches the thread; a thread that dies is replaced while the main thread keeps
// accepting; a drain ends both.
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { getHeapStatistics } from 'node:v8'
import t from 'tap'
import type { ClustersView } from '../../daemon/admin/clusters.ts'
import type { StatsView } from '../../daemon/admin/stats.ts'
import { adminRequest, until } from '../helpers/admin.ts'
import { liveDaemon, livePolicy } from '../helpers/live-daemon.ts'

/** Sessions of their own: each is one TCP connection, which the kernel hashes to one of the threads' sockets. */
const SESSIONS = 24

/** The value of an unlabelled (or first matching) sample in Prometheus text. */
function sample(text: string, name: string, labels = ''): number {
  const line = text.split('\n').find((l) => l.startsWith(name) && l.includes(labels) && !l.startsWith('#'))
  return line === undefined ? NaN : Number(line.slice(line.lastIndexOf(' ') + 1))
}

async function metrics(base: string): Promise<string> {
  return (await fetch(`${base}/metrics`)).text()
}

t.test('two threads accept on one port, the admin endpoints add them up, and a policy change reaches both', async (t) => {
  const live = await liveDaemon(t, 'workers: 2\n')
  t.same(live.daemon.workers?.running, [1], 'one worker thread besides the main one')
  const pools = Array.from({ length: SESSIONS }, () => live.newPool())
  const echoed = await Promise.all(pools.map((p) => live.echo('client', 1000, p)))
  t.ok(echoed.every((n) => n === 1000), 'every connection echoed its 1,000 bytes')

  // The access log says which thread carried each connection (worker threads add `worker`).
  const access = () => live.logs.lines().filter((l) => l.access === 'tcp' && l.reporter === 'destination')
  await until(async () => access().length >= SESSIONS, 'an access log line per connection')
  const byThread = new Map<string, number>()
  for (const l of access()) byThread.set(String(l.worker ?? 'main'), (byThread.get(String(l.worker ?? 'main')) ?? 0) + 1)
  t.ok((byThread.get('main') ?? 0) > 0 && (byThread.get('1') ?? 0) > 0, `both threads carried connections: ${JSON.stringify(Object.fromEntries(byThread))}`)

  // /metrics: one series, the sum of both threads.
  await until(async () => sample(await metrics(live.base), 'istio_tcp_connections_closed_total', 'reporter="destination"') === SESSIONS, 'closed counted')
  const text = await metrics(live.base)
  t.equal(sample(text, 'istio_tcp_connections_opened_total', 'reporter="destination"'), SESSIONS, 'opened: both threads\' counts added')
  t.equal(sample(text, 'istio_tcp_received_bytes_total', 'reporter="destination"'), SESSIONS * 1000, 'bytes: added')
  t.equal(sample(text, 'hostmesh_workers'), 2, 'hostmesh_workers counts the main thread and the worker')
  t.equal(text.split('\n').filter((l) => l.startsWith('process_resident_memory_bytes ')).length, 1, 'process metrics once')
  const rss = sample(text, 'process_resident_memory_bytes')
  t.ok(rss > 0.75 * process.memoryUsage.rss() && rss < 1.25 * process.memoryUsage.rss(), `RSS is the process's, not added per thread: ${Math.round(rss / 2 ** 20)} MiB`)
  // Each isolate's own V8 metrics are added: the worker's heap is in the total.
  const heap = sample(text, 'nodejs_heap_size_total_bytes')
  const mainHeap = getHeapStatistics().total_heap_size
  t.ok(heap > mainHeap + 4 * 2 ** 20, `heap total ${Math.round(heap / 2 ** 20)} MiB: the main thread's ${Math.round(mainHeap / 2 ** 20)} MiB and the worker's`)
  t.equal(text.split('\n').filter((l) => l.startsWith('nodejs_version_info{')).length, 1, 'one version line')

  // /stats: the listeners of both threads are one row each; connections held open on both add up.
  const held = await Promise.all(pools.map((p) => live.open('client', p)))
  for (const h of held) h.on('error', () => undefined)
  await until(async () => (await live.getJson<StatsView>('/stats')).body.listeners.find((l) => l.name === 'hbone')?.tunnels === SESSIONS, 'every held tunnel counted')
  const stats = (await live.getJson<StatsView>('/stats')).body
  t.same(stats.listeners.map((l) => l.name), ['admin', 'hbone', 'inbound-plaintext', 'outbound', 'outbound', 'outbound'], 'one row per listener, not one per thread')
  t.match(stats.listeners.find((l) => l.name === 'hbone'), { connections: SESSIONS, tunnels: SESSIONS })
  const clusters = (await live.getJson<ClustersView>('/clusters')).body
  t.equal(clusters.clusters.find((c) => c.service === 'echo.t')?.circuitBreakers.maxConnections.current, 0, 'the breakers are one host-wide count')
  for (const h of held) h.close()

  // A policy change: intruder is now allowed; every session (on either thread) sees it.
  writeFileSync(join(live.policyDir, 'live.yaml'), livePolicy(0).replace(/principals: \[[^\]]*\]/, 'principals: ["cluster.local/ns/t/sa/client", "cluster.local/ns/t/sa/intruder"]').replace(/port: 0\b/g, `port: ${echoPortOf(live.daemon)}`).replace(/targetPort: 0\b/, `targetPort: ${echoPortOf(live.daemon)}`))
  await until(async () => live.daemon.policy.current?.generation === 2, 'the new policy in force')
  await until(async () => {
    const r = await Promise.allSettled(pools.map((p) => live.echo('intruder', 10, p)))
    return r.every((x) => x.status === 'fulfilled' && x.value === 10)
  }, 'intruder allowed on every session, on both threads')
  t.pass('the worker thread follows the posted snapshot')

  // POST /logging reaches every thread: at `warn` no thread writes access-log lines, at `info`
  // both do again.
  const accessCount = () => access().length
  t.equal((await adminRequest(live.socket, '/logging?level=warn', { method: 'POST' })).status, 200)
  const quietFrom = accessCount()
  await Promise.all(pools.map((p) => live.echo('client', 10, p)))
  await new Promise((r) => setTimeout(r, 300))
  t.equal(accessCount(), quietFrom, 'no thread logs below warn')
  await adminRequest(live.socket, '/logging?level=info', { method: 'POST' })
  await Promise.all(pools.map((p) => live.echo('client', 10, p)))
  await until(async () => new Set(access().slice(quietFrom).map((l) => String(l.worker ?? 'main'))).size === 2, 'access-log lines from both threads again')
})

t.test('a worker thread that dies is replaced; the main thread accepts meanwhile; a drain ends both', async (t) => {
  const live = await liveDaemon(t, 'workers: 2\n')
  const workers = live.daemon.workers!
  await workers.kill(1)
  t.same(workers.running, [], 'the thread is gone')
  // New connections hash only to the sockets left: the main thread's.
  const during = await Promise.all(Array.from({ length: 8 }, () => live.echo('client', 100, live.newPool())))
  t.ok(during.every((n) => n === 100), 'connections made while it is down are accepted and served')
  await until(async () => workers.running.length === 1, 'replaced')
  t.equal(sample(await metrics(live.base), 'hostmesh_worker_restarts_total', 'worker="1"'), 1, 'the restart is counted')
  t.ok(live.logs.lines().some((l) => l.msg === 'worker thread exited; the other workers keep serving and a new one replaces it' && l.level === 'error'), 'and logged')
  const after = await Promise.all(Array.from({ length: 8 }, () => live.echo('client', 100, live.newPool())))
  t.ok(after.every((n) => n === 100), 'served after the replacement')
  await live.daemon.stop('test')
  t.same(workers.running, [], 'the drain ended the worker thread')
})

t.test('workers: 1 is one event loop: no thread, and the metric says so', async (t) => {
  const live = await liveDaemon(t, 'workers: 1\n')
  t.equal(live.daemon.workers, undefined, 'no worker threads')
  t.equal(sample(await metrics(live.base), 'hostmesh_workers'), 1)
  t.equal(await live.echo('client', 100), 100, 'and it serves')
})

/** The echo workload's port, from the policy in force. */
function echoPortOf(daemon: { policy: { current?: { workloads: ReadonlyMap<string, { ports: readonly { port: number }[] }> } } }): number {
  return daemon.policy.current!.workloads.get('t/echo')!.ports[0]!.port
}
