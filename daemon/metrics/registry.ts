// One prom-client registry per daemon (not the global one), so tests can run several daemons
// in one process and every component registers its metrics on the registry it is handed.
import { collectDefaultMetrics, Registry } from 'prom-client'

const REDUNDANT_TOTALS = ['nodejs_active_handles_total', 'nodejs_active_requests_total', 'nodejs_active_resources_total']

export interface Metrics {
  readonly registry: Registry
}

export function createMetrics(): Metrics {
  const registry = new Registry()
  // Includes nodejs_eventloop_lag_seconds and its percentiles: the first sign of an overloaded proxy.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 })
  // prom-client names three gauges with a counter's `_total` suffix, which Prometheus
  // tooling (promtool check metrics) rejects. Each is the sum of its per-type gauge
  // (nodejs_active_handles{type} etc.), which stays: sum() gives the same number.
  for (const name of REDUNDANT_TOTALS) registry.removeSingleMetric(name)
  return { registry }
}
