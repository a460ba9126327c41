// What the admin endpoints show with worker threads: one answer per thread (the primary's data
// plane first), merged into the one view an operator expects of the host. Counts of open
// connections and requests add up; an endpoint is EJECTED when any thread has ejected it
// (outlier state is per thread, as in each Envoy worker's load balancer); streaks show the
// longest. Metrics are merged by prom-client's AggregatorRegistry (metrics/registry.ts).
import type { ClusterView, ClustersView, HostView } from '../admin/clusters.ts'
import type { ListenerView } from '../listeners/view.ts'

/** Listeners on the same addresses (each thread binds its own socket in one reuseport group) are one. */
export function mergeListeners(all: readonly (readonly ListenerView[])[]): ListenerView[] {
  const byKey = new Map<string, ListenerView>()
  for (const list of all) {
    for (const l of list) {
      const key = `${l.name}|${l.workload ?? ''}|${[...l.addresses].sort().join(',')}`
      const seen = byKey.get(key)
      byKey.set(key, seen === undefined ? l : {
        ...seen,
        connections: seen.connections + l.connections,
        ...(seen.tunnels !== undefined || l.tunnels !== undefined ? { tunnels: (seen.tunnels ?? 0) + (l.tunnels ?? 0) } : {}),
      })
    }
  }
  return [...byKey.values()]
}

/** The primary's view (first) with every thread's counts added in. */
export function mergeClusters(all: readonly ClustersView[]): ClustersView {
  const [first, ...rest] = all
  if (first === undefined) return { generation: 0, clusters: [], otherConnections: [] }
  if (rest.length === 0) return first
  const clusters = first.clusters.map((c) => mergeCluster(c, rest.map((v) => v.clusters.find((o) => o.name === c.name))))
  const other = new Map<string, number>()
  for (const v of all) for (const o of v.otherConnections) other.set(o.name, (other.get(o.name) ?? 0) + o.activeConnections)
  return { generation: first.generation, clusters, otherConnections: [...other].sort().map(([name, activeConnections]) => ({ name, activeConnections })) }
}

function mergeCluster(c: ClusterView, others: readonly (ClusterView | undefined)[]): ClusterView {
  const present = others.filter((o): o is ClusterView => o !== undefined)
  const remaining = [c, ...present].map((v) => v.retryBudget.remaining).filter((r): r is number => r !== null)
  return {
    ...c,
    // Each thread keeps its own budget: what the host may retry now is their sum.
    retryBudget: { ...c.retryBudget, remaining: remaining.length === 0 ? null : remaining.reduce((a, b) => a + b, 0) },
    activeConnections: present.reduce((n, o) => n + o.activeConnections, c.activeConnections),
    pendingRequests: present.reduce((n, o) => n + o.pendingRequests, c.pendingRequests),
    hosts: c.hosts.map((h) => mergeHost(h, present.map((o) => o.hosts.find((x) => x.address === h.address)).filter((x): x is HostView => x !== undefined))),
  }
}

function mergeHost(h: HostView, others: readonly HostView[]): HostView {
  const all = [h, ...others]
  const sum = (f: (v: HostView) => number): number => all.reduce((n, v) => n + f(v), 0)
  const max = (f: (v: HostView) => number): number => Math.max(...all.map(f))
  const mean = (f: (v: HostView) => number | null): number | null => {
    const xs = all.map(f).filter((x): x is number => x !== null)
    return xs.length === 0 ? null : Math.round(xs.reduce((a, b) => a + b, 0) / xs.length * 100) / 100
  }
  const ejectedUntil = all.map((v) => v.ejectedUntil).filter((u): u is string => u !== null).sort().at(-1) ?? null
  return {
    ...h,
    health: ejectedUntil === null ? 'HEALTHY' : 'EJECTED',
    ejectedUntil,
    ejections: max((v) => v.ejections),
    consecutiveFailures: max((v) => v.consecutiveFailures),
    consecutive5xx: max((v) => v.consecutive5xx),
    consecutiveGatewayErrors: max((v) => v.consecutiveGatewayErrors),
    ewmaConnectMs: mean((v) => v.ewmaConnectMs),
    activeConnections: sum((v) => v.activeConnections),
    connects: sum((v) => v.connects),
    connectFailures: sum((v) => v.connectFailures),
    requestEwmaMs: mean((v) => v.requestEwmaMs),
    pending: sum((v) => v.pending),
  }
}
