// The per-request record: one access-log line and one set of Istio request metrics per request,
// whatever ends it and however often; labels only from the names it is given; peer values bounded.
import { Registry } from 'prom-client'
import t from 'tap'
import { createLogger } from '../../../daemon/log/logger.ts'
import { httpMetrics } from '../../../daemon/metrics/istio-http.ts'
import { formatFlags, REQUEST_CLIP, RequestTelemetry, stripQuery, versionOf, type RequestStart } from '../../../daemon/telemetry/request.ts'
import { logSink } from '../../helpers/log-sink.ts'

const CLIENT = { name: 'client', namespace: 'shop' }
const API = { name: 'api-v2', namespace: 'shop' }

const start = (over: Partial<RequestStart> = {}): RequestStart => ({
  reporter: 'source',
  listener: 'outbound',
  src: { address: '10.0.0.5:41000', workload: CLIENT, principal: 'spiffe://td/ns/shop/sa/client' },
  dst: { address: '10.96.0.10:80', service: 'api.shop' },
  security: 'mutual_tls',
  protocol: 'http',
  method: 'GET',
  authority: 'api.shop:80',
  path: '/orders/7',
  requestId: 'req-1',
  traceId: '4bf92f3577b34da6a3ce929d0e0e4736',
  ...over,
})

function setup() {
  const registry = new Registry()
  const sink = logSink()
  const activity = { open: 0, seen: 0 }
  const telemetry = new RequestTelemetry(httpMetrics(registry), createLogger('info', { node: 'n1' }, sink.dest).component('outbound'), activity)
  /** Label sets of istio_requests_total and their counts. */
  const series = async (): Promise<Array<{ labels: Record<string, string | number>; value: number }>> =>
    (await registry.getSingleMetric('istio_requests_total')!.get()).values.map(({ labels, value }) => ({ labels: { ...labels } as Record<string, string | number>, value }))
  return { registry, sink, activity, telemetry, series }
}

t.test('a request is counted and logged exactly once, however many times it is ended', async (t) => {
  const { sink, activity, telemetry, series } = setup()
  const r = telemetry.begin(start())
  t.equal(r.finished, false)
  t.equal(activity.seen, 0, 'activity counts finished requests')
  r.finish({ status: 200, requestBytes: 120, responseBytes: 900 })
  t.equal(r.finished, true)
  r.finish({ status: 0, flags: ['DC'], requestBytes: 1, responseBytes: 1, error: 'client reset' })
  r.update({ route: 'shop/late', upstream: '10.1.1.1:8080' })
  r.responseStarted()
  const lines = sink.lines()
  t.equal(lines.length, 1, 'one access-log line')
  t.match(lines[0], { level: 'info', component: 'outbound', msg: 'request', access: 'http', status: 200, responseFlags: '-', route: null, upstream: null, responseMs: null, error: null })
  const s = await series()
  t.equal(s.length, 1)
  t.equal(s[0]!.value, 1, 'counted once')
  t.equal(activity.seen, 1, 'activity bumped once')
})

t.test('labels from the names the record is given; unknown when it has none', async (t) => {
  const { telemetry, series } = setup()
  const known = telemetry.begin(start())
  // What the pipeline learns on the way: the endpoint picked, its workload and version.
  known.update({ dst: { workload: API, principal: 'spiffe://td/ns/shop/sa/api', version: versionOf({ app: 'api', version: 'v2' }) }, upstream: '10.1.1.2:8080', route: 'shop/api', rule: 1 })
  known.finish({ status: 201, requestBytes: 10, responseBytes: 20 })
  const unknown = telemetry.begin(start({ reporter: 'destination', listener: 'inbound-plaintext', src: { address: '10.0.0.9:5000' }, dst: {}, security: 'none' }))
  unknown.finish({ status: 403, flags: ['UAEX'], requestBytes: 10, responseBytes: 20 })
  const [a, b] = await series()
  t.same(a!.labels, {
    reporter: 'source', source_workload: 'client', source_workload_namespace: 'shop', source_principal: 'spiffe://td/ns/shop/sa/client',
    destination_service: 'api.shop', destination_workload: 'api-v2', destination_workload_namespace: 'shop', destination_principal: 'spiffe://td/ns/shop/sa/api',
    destination_version: 'v2', connection_security_policy: 'mutual_tls', request_protocol: 'http', response_code: '201', grpc_response_status: '', response_flags: '-',
  })
  t.same(b!.labels, {
    reporter: 'destination', source_workload: 'unknown', source_workload_namespace: 'unknown', source_principal: 'unknown',
    destination_service: 'unknown', destination_workload: 'unknown', destination_workload_namespace: 'unknown', destination_principal: 'unknown',
    destination_version: 'unknown', connection_security_policy: 'none', request_protocol: 'http', response_code: '403', grpc_response_status: '', response_flags: 'UAEX',
  })
})

t.test('the access-log line has every field, the query stripped', async (t) => {
  const { sink, telemetry } = setup()
  const r = telemetry.begin(start({ path: '/search?q=secret-token&page=2', startedAt: performance.now() - 40 }))
  r.update({ dst: { workload: API, principal: 'spiffe://td/ns/shop/sa/api', version: 'v2' }, route: 'shop/api', rule: 0, ruleName: 'search', upstream: '10.1.1.2:8080' })
  r.responseStarted()
  r.responseStarted() // only the first counts
  r.finish({ status: 200, requestBytes: 321, responseBytes: 4567 })
  const [line] = sink.lines()
  t.same(Object.keys(line!).filter((k) => !['level', 'time', 'node', 'component', 'msg'].includes(k)).sort(), [
    'access', 'authority', 'dst', 'durationMs', 'error', 'grpcStatus', 'listener', 'method', 'path', 'protocol', 'reporter', 'requestBytes',
    'requestId', 'responseBytes', 'responseFlags', 'responseMs', 'route', 'rule', 'ruleName', 'security', 'src', 'status', 'traceId', 'upstream',
  ])
  t.match(line, {
    access: 'http', reporter: 'source', listener: 'outbound', protocol: 'http', method: 'GET', authority: 'api.shop:80', path: '/search',
    status: 200, grpcStatus: null, responseFlags: '-', route: 'shop/api', rule: 0, ruleName: 'search', upstream: '10.1.1.2:8080',
    src: { address: '10.0.0.5:41000', workload: 'client', namespace: 'shop', principal: 'spiffe://td/ns/shop/sa/client' },
    dst: { address: '10.96.0.10:80', service: 'api.shop', workload: 'api-v2', namespace: 'shop', principal: 'spiffe://td/ns/shop/sa/api', version: 'v2' },
    security: 'mutual_tls', requestBytes: 321, responseBytes: 4567, requestId: 'req-1', traceId: '4bf92f3577b34da6a3ce929d0e0e4736', error: null,
  })
  t.ok((line!.durationMs as number) >= 40, `duration counts from startedAt (${String(line!.durationMs)} ms)`)
  t.ok((line!.responseMs as number) >= 40 && (line!.responseMs as number) <= (line!.durationMs as number), 'responseMs: from the start to the response')
  t.notMatch(JSON.stringify(sink.lines()), /secret-token|page=2/, 'nothing of the query anywhere')
  t.equal(stripQuery('/a/b?x=1?y'), '/a/b')
  t.equal(stripQuery('/plain'), '/plain')
  t.equal(stripQuery('?only'), '')
})

t.test('ids created after begin() are logged; the duration histogram is fed', async (t) => {
  const { sink, telemetry, registry } = setup()
  const r = telemetry.begin(start({ requestId: undefined, traceId: undefined, startedAt: performance.now() - 30 }))
  r.update({ requestId: 'made-here', traceId: 'abc' })
  r.finish({ status: 404, flags: ['NR'], requestBytes: 50, responseBytes: 0, error: 'no route' })
  t.match(sink.lines()[0], { requestId: 'made-here', traceId: 'abc', status: 404, responseFlags: 'NR', error: 'no route' })
  const text = await registry.metrics()
  t.match(text, /^istio_request_duration_milliseconds_bucket\{le="25",[^}]*response_code="404"[^}]*\} 0$/m, 'not under 25 ms')
  t.match(text, /^istio_request_duration_milliseconds_bucket\{le="50",[^}]*response_code="404"[^}]*\} 1$/m, '30 ms and a little: le=50')
  t.match(text, /^istio_request_bytes_sum\{[^}]*response_code="404"[^}]*\} 50$/m)
  t.match(text, /^istio_response_bytes_sum\{[^}]*response_code="404"[^}]*\} 0$/m)
})

t.test('no response sent: response_code "0", status 0', async (t) => {
  const { sink, telemetry, series } = setup()
  telemetry.begin(start()).finish({ status: 0, flags: ['DC'], requestBytes: 80, responseBytes: 0, error: 'the client went away' })
  // A status that is no 3-digit number cannot come from HTTP: "0", so a label stays bounded.
  telemetry.begin(start()).finish({ status: 12345, requestBytes: 0, responseBytes: 0 })
  const s = await series()
  t.same(s.map((x) => [x.labels.response_code, x.labels.response_flags, x.value]), [['0', 'DC', 1], ['0', '-', 1]])
  t.match(sink.lines()[0], { status: 0, responseFlags: 'DC' })
})

t.test('gRPC: grpc_response_status from grpcStatus; "" for plain HTTP and for a call without one', async (t) => {
  const { sink, telemetry, series } = setup()
  const grpc = start({ protocol: 'grpc', method: 'POST', path: '/shop.Orders/Get' })
  telemetry.begin(grpc).finish({ status: 200, grpcStatus: 0, requestBytes: 5, responseBytes: 9 })
  telemetry.begin(grpc).finish({ status: 200, grpcStatus: 7, requestBytes: 5, responseBytes: 9 })
  telemetry.begin(grpc).finish({ status: 0, flags: ['DC'], requestBytes: 5, responseBytes: 0 })
  telemetry.begin(grpc).finish({ status: 200, grpcStatus: 99999, requestBytes: 5, responseBytes: 9 })
  telemetry.begin(start()).finish({ status: 200, grpcStatus: 7, requestBytes: 5, responseBytes: 9 })
  const s = await series()
  t.same(s.map((x) => [x.labels.request_protocol, x.labels.grpc_response_status, x.value]), [
    ['grpc', '0', 1], ['grpc', '7', 1], ['grpc', '', 1], ['grpc', '2', 1], ['http', '', 1],
  ], 'a code outside 0..16 is UNKNOWN (2): a peer cannot grow the label')
  t.same(sink.lines().map((l) => [l.protocol, l.grpcStatus]), [['grpc', 0], ['grpc', 7], ['grpc', null], ['grpc', 99999], ['http', null]])
})

t.test('flags: "-", one, or several comma-joined in Envoy\'s order', async (t) => {
  t.equal(formatFlags(undefined), '-')
  t.equal(formatFlags([]), '-')
  t.equal(formatFlags(['-']), '-')
  t.equal(formatFlags(['UAEX']), 'UAEX')
  t.equal(formatFlags(['URX', 'UF']), 'UF,URX', 'Envoy writes UF before URX')
  t.equal(formatFlags(['UF', 'URX', 'UF']), 'UF,URX', 'each once')
  t.equal(formatFlags(['DC', 'UT', 'RL', 'FI', 'DI', 'NR', 'UO', 'UH', 'UAEX']), 'UH,UT,UO,NR,DI,FI,RL,UAEX,DC')
  t.equal(formatFlags(['-', 'UT']), 'UT')
  const { sink, telemetry, series } = setup()
  telemetry.begin(start()).finish({ status: 503, flags: ['URX', 'UF'], requestBytes: 0, responseBytes: 19 })
  t.equal(sink.lines()[0]!.responseFlags, 'UF,URX')
  t.equal((await series())[0]!.labels.response_flags, 'UF,URX')
})

t.test('every value a peer chose is clipped, so one line stays bounded', async (t) => {
  const { sink, telemetry, series } = setup()
  const huge = 'x'.repeat(60_000)
  telemetry.begin(start({ method: `M${huge}`, authority: `a${huge}`, path: `/${huge}?${huge}`, requestId: `r${huge}`, traceId: `t${huge}` }))
    .finish({ status: 400, requestBytes: 300_000, responseBytes: 0, error: `bad header ${huge}` })
  const [line] = sink.lines()
  const kept = (v: unknown): number => String(v).replace(/…\(\+\d+ chars\)$/, '').length
  t.equal(kept(line!.method), REQUEST_CLIP.method)
  t.equal(kept(line!.authority), REQUEST_CLIP.authority)
  t.equal(kept(line!.path), REQUEST_CLIP.path)
  t.match(line!.path, /…\(\+59745 chars\)$/, 'the path is clipped after the query is gone (60,001 characters)')
  t.equal(kept(line!.requestId), REQUEST_CLIP.id)
  t.equal(kept(line!.traceId), REQUEST_CLIP.id)
  t.equal(kept(line!.error), REQUEST_CLIP.error)
  t.ok(JSON.stringify(line).length < 2500, `the line is bounded (${JSON.stringify(line).length} characters)`)
  t.same(Object.values((await series())[0]!.labels).filter((v) => String(v).includes('xxx')), [], 'no peer value in any label')
})

t.test('versionOf: the version label, else app.kubernetes.io/version', async (t) => {
  t.equal(versionOf({ version: 'v1', 'app.kubernetes.io/version': '1.2.0' }), 'v1')
  t.equal(versionOf({ 'app.kubernetes.io/version': '1.2.0' }), '1.2.0')
  t.equal(versionOf({ app: 'x' }), undefined)
})

t.test('without an activity object the record still works', async (t) => {
  const registry = new Registry()
  const sink = logSink()
  const telemetry = new RequestTelemetry(httpMetrics(registry), createLogger('info', {}, sink.dest).root)
  telemetry.begin(start()).finish({ status: 200, requestBytes: 1, responseBytes: 1 })
  t.equal(sink.lines().length, 1)
})

t.test('at warn the access log is off: the request is counted, no line is written', async (t) => {
  const registry = new Registry()
  const sink = logSink()
  const telemetry = new RequestTelemetry(httpMetrics(registry), createLogger('warn', { node: 'n1' }, sink.dest).component('outbound'))
  for (let i = 0; i < 3; i++) telemetry.begin(start()).finish({ status: 200, requestBytes: 1, responseBytes: 2 })
  const values = (await registry.getSingleMetric('istio_requests_total')!.get()).values
  t.equal(values.reduce((n, v) => n + v.value, 0), 3, 'all three counted, in one series')
  t.equal(values.length, 1)
  t.same(sink.lines(), [], 'no access-log line')
})
