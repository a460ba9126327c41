// Istio's standard request metrics, with its labels, so existing dashboards and alerts work.
// Every proxied request is reported once by the source side (reporter="source") and once by the
// destination side (reporter="destination"), like the TCP metrics (istio-tcp.ts).
import type { Registry } from 'prom-client'
import { SeriesCounter, SeriesHistogram } from './series.ts'

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
  const counter = (name: string, help: string): SeriesCounter =>
    (registry.getSingleMetric(name) as SeriesCounter | undefined) ?? new SeriesCounter(registry, name, help, MAX_SERIES)
  const histogram = (name: string, help: string): SeriesHistogram =>
    (registry.getSingleMetric(name) as SeriesHistogram | undefined) ?? new SeriesHistogram(registry, name, help, ENVOY_DEFAULT_BUCKETS, MAX_SERIES)
  const requests = counter('istio_requests_total', 'Requests handled (Istio standard metric).')
  const duration = histogram('istio_request_duration_milliseconds', 'Request duration in milliseconds, from the request to the end of its response (Istio standard metric).')
  const requestBytes = histogram('istio_request_bytes', 'Request size in bytes, headers and body (Istio standard metric).')
  const responseBytes = histogram('istio_response_bytes', 'Response size in bytes, headers and body (Istio standard metric).')
  // One joined key finds each of the four series (series.ts: no label checks or hashing per request).
  return {
    request: (l, ms, req, res) => {
      const key = labelKey(l)
      requests.at(key, l).inc()
      duration.at(key, l).observe(ms)
      requestBytes.at(key, l).observe(req)
      responseBytes.at(key, l).observe(res)
    },
  }
}

/** Label values come only from names the snapshot knows, so the set is small; the bound is for safety. */
const MAX_SERIES = 4096

function labelKey(l: HttpLabels): string {
  let k = ''
  for (const name of HTTP_LABELS) k += `${l[name]}\u0000`
  return k
}
