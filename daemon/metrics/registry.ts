// One prom-client registry per daemon (not the global one), so tests can run several daemons
// in one process and every component registers its metrics on the registry it is handed.
import { AggregatorRegistry, collectDefaultMetrics, Registry } from 'prom-client'

const REDUNDANT_TOTALS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

/**
 * prom-client's default metrics that measure the whole process (CPU, RSS, fds, start time,
 * version): the main thread exports them; a worker thread's copy would be added to them.
 */
const PROCESS_WIDE = [
  'process_cpu_user_seconds_total', 'process_cpu_system_seconds_total', 'process_cpu_seconds_total', 'process_start_time_seconds',
  'process_resident_memory_bytes', 'process_virtual_memory_bytes', 'process_heap_bytes', 'process_open_fds', 'process_max_fds', 'nodejs_version_info',
]

export interface Metrics {
  readonly registry: Registry
  /**
   * What /metrics exports: this registry, merged with the worker threads' when there are
   * some (counters and histograms summed, gauges as each one's `aggregator` says).
   */
  exported(): Promise<Registry>
}

/** A registry's getMetricsAsJSON(): what prom-client's AggregatorRegistry merges. */
export type MetricsJson = Awaited<ReturnType<Registry['getMetricsAsJSON']>>

/** `others`: the worker threads' metrics, asked at each scrape. */
export function createMetrics(others?: () => Promise<readonly MetricsJson[]>): Metrics {
  const registry = withDefaultMetrics(new Registry(), [])
  return {
    registry,
    async exported() {
      const rest = others ? await others() : []
      if (rest.length === 0) return registry
      return AggregatorRegistry.aggregate([await registry.getMetricsAsJSON(), ...rest])
    },
  }
}

/**
 * A worker thread's registry: the default metrics of its own V8 isolate and event loop (heap,
 * collections, loop lag, handles), which /metrics adds to the main thread's (lag averaged,
 * as prom-client's aggregators say), and none of the process's.
 */
export function createThreadRegistry(): Registry {
  return withDefaultMetrics(new Registry(), PROCESS_WIDE)
}

function withDefaultMetrics(registry: Registry, without: readonly string[]): Registry {
  // Includes nodejs_eventloop_lag_seconds and its percentiles: the first sign of an overloaded proxy.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 })
  // prom-client names three gauges with a counter's `_total` suffix, which Prometheus
  // tooling (promtool check metrics) rejects. Each is the sum of its per-type gauge
  // (nodejs_active_handles{type} etc.), which stays: sum() gives the same number.
  for (const name of [...REDUNDANT_TOTALS, ...without]) registry.removeSingleMetric(name)
  return registry
}
