// Istio's standard request metrics, with its labels, so existing dashboards and alerts work.
// Every proxied request is reported once by the source side (reporter="source") and once by the
// destination side (reporter="destination"), like the TCP metrics (istio-tcp.ts).
import { Counter, Histogram, type Registry } from 'prom-client'

export const HTTP_LABELS = [
  'reporter',
  'source_workload', 'source_workload_namespace', 'source_principal',
  'destination_service', 'destination_workload', 'destination_workload_namespace', 'destination_principal', 'destination_version',
  'connection_security_policy', 'request_protocol', 'response_code', 'grpc_response_status', 'response_flags',
] as const
export type HttpLabelName = (typeof HTTP_LABELS)[number]
export type HttpLabels = Record<HttpLabelName, string>

/**
 * Envoy's default histogram buckets. Istio records all three request histograms with them
 * (the sizes too: it sets no buckets of its own unless a pod asks with the
 * `sidecar.istio.io/statsHistogramBuckets` annotation), so dashboards' `le` values match.
 */
export const ENVOY_DEFAULT_BUCKETS: readonly number[] = Object.freeze([0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000])

export interface HttpMetrics {
  /** One finished request, all four metrics under the same labels. */
  request(l: HttpLabels, durationMs: number, requestBytes: number, responseBytes: number): void
}

export function httpMetrics(registry: Registry): HttpMetrics {
  const requests = (registry.getSingleMetric('istio_requests_total') as Counter<HttpLabelName> | undefined)
    ?? new Counter({ name: 'istio_requests_total', help: 'Requests handled (Istio standard metric).', labelNames: [...HTTP_LABELS], registers: [registry] })
  const histogram = (name: string, help: string): Histogram<HttpLabelName> =>
    (registry.getSingleMetric(name) as Histogram<HttpLabelName> | undefined)
      ?? new Histogram({ name, help, labelNames: [...HTTP_LABELS], buckets: [...ENVOY_DEFAULT_BUCKETS], registers: [registry] })
  const duration = histogram('istio_request_duration_milliseconds', 'Request duration in milliseconds, from the request to the end of its response (Istio standard metric).')
  const requestBytes = histogram('istio_request_bytes', 'Request size in bytes, headers and body (Istio standard metric).')
  const responseBytes = histogram('istio_response_bytes', 'Response size in bytes, headers and body (Istio standard metric).')
  // prom-client checks and hashes the labels on every call, four times per request; the
  // four children of one label set are found once by one joined key instead. Label values
  // come only from names the snapshot knows, so the set is small; the bound is for safety.
  const children = new Map<string, Children>()
  return {
    request: (l, ms, req, res) => {
      const key = labelKey(l)
      let c = children.get(key)
      if (!c) {
        if (children.size >= MAX_CHILDREN) children.clear()
        c = { requests: requests.labels(l), duration: duration.labels(l), requestBytes: requestBytes.labels(l), responseBytes: responseBytes.labels(l) }
        children.set(key, c)
      }
      c.requests.inc()
      c.duration.observe(ms)
      c.requestBytes.observe(req)
      c.responseBytes.observe(res)
    },
  }
}

const MAX_CHILDREN = 4096

interface Children {
  readonly requests: { inc(): void }
  readonly duration: { observe(v: number): void }
  readonly requestBytes: { observe(v: number): void }
  readonly responseBytes: { observe(v: number): void }
}

function labelKey(l: HttpLabels): string {
  let k = ''
  for (const name of HTTP_LABELS) k += `${l[name]}\u0000`
  return k
}
