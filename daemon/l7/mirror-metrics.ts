// hostmesh_mirror_requests_total{destination_service, result}: what became of each mirrored
// copy (HTTPRoute RequestMirror), by mirror service. sent: it was answered, below 500;
// failed: it was answered 5xx, or got no answer (connect failure, reset, its timeout, no
// endpoint) — in the mesh a mirror that is down answers 503 from its host's proxy;
// dropped: it was never sent (over the concurrency cap, a body past the 64 KiB buffer or cut
// short by the client). The copies are not in the access log or the Istio request metrics.
import { Counter, type Registry } from 'prom-client'

export type MirrorResult = 'sent' | 'failed' | 'dropped'

export class MirrorMetrics {
  readonly #counter: Counter<'destination_service' | 'result'>

  constructor(registry: Registry) {
    this.#counter = (registry.getSingleMetric('hostmesh_mirror_requests_total') as Counter<'destination_service' | 'result'> | undefined)
      ?? new Counter({ name: 'hostmesh_mirror_requests_total', help: 'Mirrored copies of HTTP requests (HTTPRoute RequestMirror) by mirror service: answered below 500 (sent), answered 5xx or not at all (failed), never sent (dropped).', labelNames: ['destination_service', 'result'], registers: [registry] })
  }

  mirrored(service: string, result: MirrorResult): void {
    this.#counter.inc({ destination_service: service, result })
  }
}
