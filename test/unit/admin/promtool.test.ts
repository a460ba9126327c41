// /metrics of a live daemon, after real traffic (so labelled series exist), must pass
// Prometheus's own linter: `promtool check metrics` (Debian package "prometheus") exits 0 and
// says nothing. In CI a missing promtool fails the test; elsewhere it is skipped, loudly.
import { spawn, spawnSync } from 'node:child_process'
import t from 'tap'
import { liveDaemon } from '../../helpers/live-daemon.ts'

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

t.test('promtool check metrics finds no problem in /metrics', { skip: skipWithoutPromtool() }, async (t) => {
  if (!found) return void t.fail(`promtool not found, and CI=true: ${INSTALL}`)
  const live = await liveDaemon(t)
  for (let i = 0; i < 2; i++) await live.echo('client', 100)
  await t.rejects(live.open('intruder'), { code: 'HOSTMESH_ERR_TUNNEL', status: 401 })
  const text = await (await fetch(`${live.base}/metrics`)).text()
  t.match(text, /^istio_tcp_connections_opened_total\{reporter="destination",/m, 'labelled Istio series are present')
  t.match(text, /^hostmesh_config_reloads_total\{result="success"\} 1$/m)
  t.match(text, /^hostmesh_log_dropped_lines_total 0$/m, 'the logger\'s counter is registered (logs go to a stream passed in: nothing dropped)')
  const res = await promtool(text)
  t.equal(res.error, undefined, 'promtool runs')
  t.equal(res.code, 0, `promtool exit code; output:\n${res.output}`)
  t.equal(res.output, '', 'no complaint')
})
