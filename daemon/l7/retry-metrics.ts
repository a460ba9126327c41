// hostmesh_retries_total{destination_service, result}: what became of each retry the routes
// asked for. success / failure: a retry was sent and its answer was not / was itself worth a
// retry; limit: the route's attempts were used up; budget_exhausted: the service's retry
// budget refused it. Only retries touch it, so its label lookups are off the common path.
import { Counter, type Registry } from 'prom-client'

export type RetryResult = 'success' | 'failure' | 'budget_exhausted' | 'limit'

export class RetryMetrics {
  readonly #counter: Counter<'destination_service' | 'result'>

  constructor(registry: Registry) {
    this.#counter = (registry.getSingleMetric('hostmesh_retries_total') as Counter<'destination_service' | 'result'> | undefined)
      ?? new Counter({ name: 'hostmesh_retries_total', help: 'Retries of HTTP requests by destination service: sent and succeeded, sent and failed, refused by the attempts limit, refused by the retry budget.', labelNames: ['destination_service', 'result'], registers: [registry] })
  }

  retried(service: string, result: RetryResult): void {
    this.#counter.inc({ destination_service: service, result })
  }
}
