// Istio's request metrics: names, types, labels and Envoy's buckets, as /metrics exports them.
import { Registry } from 'prom-client'
import t from 'tap'
import { ENVOY_DEFAULT_BUCKETS, HTTP_LABELS, httpMetrics, type HttpLabels } from '../../../daemon/metrics/istio-http.ts'

const ENVOY = [0.5, 1, 5, 10, 25, 50, 100, 250, 500, 1000, 2500, 5000, 10000, 30000, 60000, 300000, 600000, 1800000, 3600000]
const HISTOGRAMS = ['istio_request_duration_milliseconds', 'istio_request_bytes', 'istio_response_bytes']

const labels = (code = '200', flags = '-'): HttpLabels => ({
  reporter: 'source', source_workload: 'client', source_workload_namespace: 'ns', source_principal: 'spiffe://td/ns/ns/sa/client',
  destination_service: 'api.ns', destination_workload: 'api-v1', destination_workload_namespace: 'ns', destination_principal: 'spiffe://td/ns/ns/sa/api',
  destination_version: 'v1', connection_security_policy: 'mutual_tls', request_protocol: 'http', response_code: code, grpc_response_status: '', response_flags: flags,
})

/** `le` values of a histogram's (only) series, in the order /metrics lists them (prom-client writes `le` first). */
function bounds(text: string, name: string): string[] {
  return [...text.matchAll(new RegExp(`^${name}_bucket\\{le="([^"]+)",`, 'gm'))].map((m) => m[1]!)
}

t.test('three histograms with exactly Envoy\'s default buckets, one counter; every label of Istio\'s', async (t) => {
  t.same(ENVOY_DEFAULT_BUCKETS, ENVOY)
  const registry = new Registry()
  httpMetrics(registry).request(labels(), 3, 100, 2000)
  const text = await registry.metrics()
  t.match(text, /^# TYPE istio_requests_total counter$/m)
  for (const name of HISTOGRAMS) {
    t.match(text, new RegExp(`^# TYPE ${name} histogram$`, 'm'))
    t.same(bounds(text, name), [...ENVOY.map(String), '+Inf'], `${name} buckets`)
    const count = new RegExp(`^${name}_count\\{([^}]*)\\}`, 'm').exec(text)?.[1] ?? ''
    t.same([...count.matchAll(/(\w+)="/g)].map((m) => m[1]), [...HTTP_LABELS], `${name} labels`)
  }
  t.same(HTTP_LABELS, [
    'reporter', 'source_workload', 'source_workload_namespace', 'source_principal', 'destination_service', 'destination_workload',
    'destination_workload_namespace', 'destination_principal', 'destination_version', 'connection_security_policy', 'request_protocol',
    'response_code', 'grpc_response_status', 'response_flags',
  ])
  t.match(text, /^istio_requests_total\{reporter="source",source_workload="client",source_workload_namespace="ns",.*,response_code="200",grpc_response_status="",response_flags="-"\} 1$/m)
})

t.test('a request lands in the right bucket of each histogram, under its labels', async (t) => {
  const registry = new Registry()
  const m = httpMetrics(registry)
  m.request(labels(), 3, 100, 2000)
  m.request(labels(), 0.2, 0, 4_000_000)
  m.request(labels('503', 'UF,URX'), 12, 7, 0)
  const text = await registry.metrics()
  const ok = 'response_code="200",grpc_response_status="",response_flags="-"'
  const bucket = (name: string, le: string, sel = ok): number =>
    Number(new RegExp(`^${name}_bucket\\{le="${le.replace('+', '\\+')}",[^}]*${sel}\\} (\\d+)$`, 'm').exec(text)?.[1])
  t.equal(bucket('istio_request_duration_milliseconds', '0.5'), 1, '0.2 ms: first bucket')
  t.equal(bucket('istio_request_duration_milliseconds', '1'), 1)
  t.equal(bucket('istio_request_duration_milliseconds', '5'), 2, '3 ms: le=5')
  t.equal(bucket('istio_request_bytes', '0.5'), 1, '0 bytes')
  t.equal(bucket('istio_request_bytes', '100'), 2, '100 bytes: le=100 (upper bound inclusive)')
  t.equal(bucket('istio_response_bytes', '2500'), 1, '2000 bytes: le=2500')
  t.equal(bucket('istio_response_bytes', '3600000'), 1, '4,000,000 bytes is only in +Inf')
  t.equal(bucket('istio_response_bytes', '+Inf'), 2)
  t.match(text, /^istio_request_duration_milliseconds_sum\{[^}]*response_flags="-"\} 3\.2$/m)
  t.match(text, /^istio_requests_total\{[^}]*response_code="200",[^}]*\} 2$/m)
  const failed = 'response_code="503",grpc_response_status="",response_flags="UF,URX"'
  t.match(text, /^istio_requests_total\{[^}]*response_code="503",grpc_response_status="",response_flags="UF,URX"\} 1$/m, 'a separate series')
  t.equal(bucket('istio_request_duration_milliseconds', '10', failed), 0)
  t.equal(bucket('istio_request_duration_milliseconds', '25', failed), 1)
})

t.test('httpMetrics is idempotent on a registry: a second call shares the same series', async (t) => {
  const registry = new Registry()
  const a = httpMetrics(registry)
  const b = httpMetrics(registry)
  a.request(labels(), 1, 1, 1)
  b.request(labels(), 1, 1, 1)
  const text = await registry.metrics()
  t.match(text, /^istio_requests_total\{[^}]*\} 2$/m)
  t.match(text, /^istio_response_bytes_count\{[^}]*\} 2$/m)
  t.equal(text.match(/^# TYPE istio_requests_total /gm)?.length, 1, 'registered once')
})
