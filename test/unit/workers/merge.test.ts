// The admin views of several threads merged into one host view: listeners on the same
// addresses are one row with their connections added; clusters add their counts, an endpoint
// ejected by any thread is EJECTED, streaks show the longest, retry budgets add up.
import t from 'tap'
import type { ClustersView, ClusterView, HostView } from '../../../daemon/admin/clusters.ts'
import { mergeClusters, mergeListeners } from '../../../daemon/workers/merge.ts'

t.test('listeners: one row per listener, connections and tunnels added', async (t) => {
  const main = [
    { name: 'hbone', addresses: ['[::]:15008'], connections: 2, tunnels: 5 },
    { name: 'outbound', addresses: ['127.0.0.1:15001'], connections: 1, workload: 't/a' },
  ]
  const worker = [
    { name: 'hbone', addresses: ['[::]:15008'], connections: 3, tunnels: 1 },
    { name: 'outbound', addresses: ['127.0.0.1:15001'], connections: 4, workload: 't/a' },
    { name: 'outbound', addresses: ['127.0.0.1:15002'], connections: 1, workload: 't/b' },
  ]
  t.same(mergeListeners([main, worker]), [
    { name: 'hbone', addresses: ['[::]:15008'], connections: 5, tunnels: 6 },
    { name: 'outbound', addresses: ['127.0.0.1:15001'], connections: 5, workload: 't/a' },
    { name: 'outbound', addresses: ['127.0.0.1:15002'], connections: 1, workload: 't/b' },
  ])
  t.same(mergeListeners([main]), main, 'one thread: unchanged')
})

const host = (over: Partial<HostView>): HostView => ({
  address: '10.0.0.1:80', workload: 't/a', identity: null, node: null, health: 'HEALTHY', ejectedUntil: null, ejections: 0,
  consecutiveFailures: 0, consecutive5xx: 0, consecutiveGatewayErrors: 0, ewmaConnectMs: null, activeConnections: 0,
  connects: 0, connectFailures: 0, requestEwmaMs: null, pending: 0, ...over,
})
const cluster = (hosts: HostView[], over: Partial<ClusterView> = {}): ClusterView => ({
  name: 't/a:80', service: 'a.t', port: 80, portName: null, protocol: 'tcp', addresses: [], external: false,
  loadBalancer: 'LEAST_REQUEST', destinationPolicy: 'default', outlierDetection: null,
  circuitBreakers: { maxConnections: { limit: 10, current: 3, open: false }, maxPendingRequests: { limit: 10, current: 0, open: false }, maxRequests: { limit: 10, current: 0, open: false } },
  retryBudget: { percent: 20, minRetriesPerSecond: 10, ttlMs: 10000, remaining: null },
  route: null, activeConnections: 0, pendingRequests: 0, hosts, ...over,
} as unknown as ClusterView)

t.test('clusters: counts added, ejection by any thread, longest streak, budgets added', async (t) => {
  const until = new Date(Date.now() + 30_000).toISOString()
  const main: ClustersView = {
    generation: 3,
    clusters: [cluster([host({ activeConnections: 2, connects: 5, consecutive5xx: 1, ewmaConnectMs: 2, pending: 1 })], { activeConnections: 2, pendingRequests: 1, retryBudget: { percent: 20, minRetriesPerSecond: 10, ttlMs: 10000, remaining: 7 } })],
    otherConnections: [{ name: 'workload:t/x:9', activeConnections: 1 }],
  }
  const worker: ClustersView = {
    generation: 3,
    clusters: [cluster([host({ activeConnections: 1, connects: 2, consecutive5xx: 4, ewmaConnectMs: 4, health: 'EJECTED', ejectedUntil: until, ejections: 1 })], { activeConnections: 1, retryBudget: { percent: 20, minRetriesPerSecond: 10, ttlMs: 10000, remaining: 5 } })],
    otherConnections: [{ name: 'workload:t/x:9', activeConnections: 2 }],
  }
  const merged = mergeClusters([main, worker])
  const c = merged.clusters[0]!
  t.match(c, { activeConnections: 3, pendingRequests: 1, retryBudget: { remaining: 12 } })
  t.same(c.circuitBreakers, main.clusters[0]!.circuitBreakers, 'breakers are one shared count: the first thread\'s view')
  t.match(c.hosts[0], { activeConnections: 3, connects: 7, consecutive5xx: 4, ewmaConnectMs: 3, pending: 1, health: 'EJECTED', ejectedUntil: until, ejections: 1 })
  t.same(merged.otherConnections, [{ name: 'workload:t/x:9', activeConnections: 3 }])
  t.equal(mergeClusters([main]), main, 'one thread: its own view')
  t.same(mergeClusters([]), { generation: 0, clusters: [], otherConnections: [] })
})
