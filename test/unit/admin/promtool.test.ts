// /metrics of a live daemon, after real traffic (so labelled series exist), must pass
// Prometheus's own linter: `promtool check metrics` (Debian package "prometheus") exits 0 and
// says nothing. In CI a missing promtool fails the test; elsewhere it is skipped, loudly.
//
// One complaint is allowed, and only that one: Istio's name istio_request_duration_milliseconds
// is not in base units (seconds). Dashboards and alerts query that name, so it stays; promtool
// then exits 3 (lint problems) with that single line.
import { spawn, spawnSync } from 'node:child_process'
import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { createLogger } from '../../../daemon/log/logger.ts'
import { httpMetrics } from '../../../daemon/metrics/istio-http.ts'
import { RequestTelemetry } from '../../../daemon/telemetry/request.ts'
import { liveDaemon } from '../../helpers/live-daemon.ts'
import { logSink } from '../../helpers/log-sink.ts'

const INSTALL = 'apt-get install -y --no-install-recommends prometheus'
const found = spawnSync('promtool', ['--version'], { stdio: 'ignore' }).status === 0

/** Outside CI a missing promtool skips, loudly; in CI (CI=true) it fails the test. */
function skipWithoutPromtool(): string | false {
  if (found || process.env.CI === 'true') return false
  const reason = `SKIPPED: promtool not found (${INSTALL})`
  process.stderr.write(`\n########################################################################\n# ${reason}\n########################################################################\n\n`)
  return reason
}

function promtool(input: string): Promise<{ code: number | null; output: string; error?: Error }> {
  return new Promise((resolve) => {
    const child = spawn('promtool', ['check', 'metrics'], { stdio: ['pipe', 'pipe', 'pipe'] })
    let output = ''
    child.stdout.on('data', (d: Buffer) => { output += d.toString() })
    child.stderr.on('data', (d: Buffer) => { output += d.toString() })
    child.on('error', (error) => resolve({ code: null, output, error }))
    child.on('close', (code) => resolve({ code, output }))
    child.stdin.on('error', () => undefined)
    child.stdin.end(input)
  })
}

/** Istio's metric names that promtool's lint rejects and that must keep their names. */
const ISTIO_NAMES_PROMTOOL_REJECTS = /^istio_request_duration_milliseconds use base unit "seconds" instead of "milliseconds"$/

/** promtool runs, and says nothing but the allowed complaint (exit 0, or 3 for that lint alone). */
async function assertClean(t: Test, text: string): Promise<void> {
  const res = await promtool(text)
  t.equal(res.error, undefined, 'promtool runs')
  const problems = res.output.split('\n').filter((l) => l !== '' && !ISTIO_NAMES_PROMTOOL_REJECTS.test(l))
  t.same(problems, [], 'no complaint other than Istio\'s unit')
  t.ok(res.code === 0 || (res.code === 3 && problems.length === 0), `promtool exit code ${String(res.code)}; output:\n${res.output}`)
}

t.test('promtool check metrics finds no problem in /metrics', { skip: skipWithoutPromtool() }, async (t) => {
  if (!found) return void t.fail(`promtool not found, and CI=true: ${INSTALL}`)
  const live = await liveDaemon(t)
  for (let i = 0; i < 2; i++) await live.echo('client', 100)
  await t.rejects(live.open('intruder'), { code: 'HOSTMESH_ERR_TUNNEL', status: 401 })
  const text = await (await fetch(`${live.base}/metrics`)).text()
  t.match(text, /^istio_tcp_connections_opened_total\{reporter="destination",/m, 'labelled Istio series are present')
  t.match(text, /^hostmesh_config_reloads_total\{result="success"\} 1$/m)
  t.match(text, /^hostmesh_log_dropped_lines_total 0$/m, 'the logger\'s counter is registered (logs go to a stream passed in: nothing dropped)')
  await assertClean(t, text)
})

t.test('promtool check metrics finds no problem in the Istio request metrics', { skip: skipWithoutPromtool() }, async (t) => {
  if (!found) return void t.fail(`promtool not found, and CI=true: ${INSTALL}`)
  // Not yet on a live daemon's /metrics (the L7 listeners are wired separately): the same
  // registry type and metrics, after requests of every kind (gRPC status "", several flags).
  const registry = new Registry()
  const telemetry = new RequestTelemetry(httpMetrics(registry), createLogger('info', {}, logSink().dest).root)
  const src = { workload: { name: 'client', namespace: 'shop' }, principal: 'spiffe://td/ns/shop/sa/client' }
  const dst = { service: 'api.shop', workload: { name: 'api', namespace: 'shop' }, principal: 'spiffe://td/ns/shop/sa/api', version: 'v1' }
  const base = { reporter: 'source', listener: 'outbound', src, dst, security: 'mutual_tls', method: 'GET', authority: 'api.shop', path: '/' } as const
  telemetry.begin({ ...base, protocol: 'http' }).finish({ status: 200, requestBytes: 100, responseBytes: 2000 })
  telemetry.begin({ ...base, protocol: 'http' }).finish({ status: 503, flags: ['URX', 'UF'], requestBytes: 100, responseBytes: 19 })
  telemetry.begin({ ...base, protocol: 'http', reporter: 'destination', listener: 'hbone', src: {} }).finish({ status: 0, flags: ['DC'], requestBytes: 10, responseBytes: 0 })
  telemetry.begin({ ...base, protocol: 'grpc' }).finish({ status: 200, grpcStatus: 7, requestBytes: 30, responseBytes: 40 })
  telemetry.begin({ ...base, protocol: 'grpc' }).finish({ status: 200, requestBytes: 30, responseBytes: 0 })
  const text = await registry.metrics()
  t.match(text, /^istio_requests_total\{[^}]*grpc_response_status="",response_flags="UF,URX"\} 1$/m, 'labelled request series are present')
  t.match(text, /^istio_request_duration_milliseconds_bucket\{le="0.5",/m)
  await assertClean(t, text)
  // The allowance is that one line: anything else promtool says still fails.
  const res = await promtool(`${text}# HELP bad_milliseconds x\n# TYPE bad_milliseconds gauge\nbad_milliseconds 1\n`)
  t.match(res.output, /^bad_milliseconds use base unit/m, 'another name in milliseconds is still a complaint')
})
