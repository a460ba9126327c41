// One prom-client registry per daemon (not the global one), so tests can run several daemons
// in one process and every component registers its metrics on the registry it is handed.
import { collectDefaultMetrics, Registry } from 'prom-client'

export interface Metrics {
  readonly registry: Registry
}

export function createMetrics(): Metrics {
  const registry = new Registry()
  // Includes nodejs_eventloop_lag_seconds and its percentiles: the first sign of an overloaded proxy.
  collectDefaultMetrics({ register: registry, eventLoopMonitoringPrecision: 10 })
  return { registry }
}
