// The daemon with a real policy dir: readiness waits for the first good policy, a bad change
// keeps the last good one and shows in /config_dump and the reload metrics, SIGHUP reloads.
import { spawn } from 'node:child_process'
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { Writable } from 'node:stream'
import t from 'tap'
import { Daemon } from '../../../daemon/run/lifecycle.ts'
import { CLI } from '../../helpers/cli.ts'
import { nodeCertDir } from '../../helpers/pki.ts'
import { get, until } from '../../helpers/admin.ts'
import { daemonPorts } from '../../helpers/ports.ts'

const EXAMPLES = new URL('../../../policy/examples/', import.meta.url).pathname
const silent = new Writable({ write(_c, _e, cb) { cb() } })

async function setup(policy: 'good' | 'bad'): Promise<{ config: string; dir: string; port: number; ports: Awaited<ReturnType<typeof daemonPorts>> }> {
  const root = mkdtempSync(join(tmpdir(), 'hostmesh-reload-'))
  const dir = join(root, 'policy.d')
  cpSync(EXAMPLES, dir, { recursive: true })
  if (policy === 'bad') writeFileSync(join(dir, '30-routes.yaml'), readFileSync(join(dir, '30-routes.yaml'), 'utf8').replace('weight: 90', 'weight: -90'))
  const ports = await daemonPorts()
  const port = ports.admin
  const config = join(root, 'hostmesh.yaml')
  const certDir = await nodeCertDir(root, 'node-c')
  writeFileSync(config, `node: {name: node-c, addresses: [10.77.0.13]}\n${ports.yaml}policyDir: ${dir}\ncertDir: ${certDir}\ndrainSeconds: 1\n`)
  return { config, dir, port, ports }
}

t.test('a bad change keeps the last good policy, visible in /config_dump and the metrics', async (t) => {
  const { config, dir, port, ports } = await setup('good')
  const daemon = await Daemon.start({ configPath: config, logDest: silent })
  t.teardown(() => daemon.stop('test'))
  t.equal((await get(port, '/ready')).status, 200)
  let dump = JSON.parse((await get(port, '/config_dump')).body)
  t.match(dump.policy, { dir, generation: 1, hash: /^[0-9a-f]{64}$/, lastError: null, counts: { Service: 6 } })
  t.equal(dump.policy.files.length, 5)
  t.same(dump.policy.snapshot.localWorkloads.map((l: { workload: { key: string }; outboundPort: number }) => [l.workload.key, l.outboundPort]), [['shop/fraud', ports.outboundBase], ['shop/payments-v2', ports.outboundBase + 1]])
  t.equal(dump.config.node.name, 'node-c')

  writeFileSync(join(dir, '20-services.yaml'), readFileSync(join(dir, '20-services.yaml'), 'utf8').replace('protocol: http, targetPort: http}', 'protocol: htp, targetPort: http}'))
  await until(async () => JSON.parse((await get(port, '/config_dump')).body).policy.lastError !== null, 'the failed reload')
  dump = JSON.parse((await get(port, '/config_dump')).body)
  t.equal(dump.policy.generation, 1, 'generation 1 stays in force')
  t.match(dump.policy.lastError, { reason: 'watch', problems: [new RegExp(`^${join(dir, '20-services.yaml')}:\\d+:\\d+: spec\\.ports\\[0\\]\\.protocol: "htp" is not allowed`)] })
  t.ok(dump.policy.snapshot.services['shop/checkout'], 'the compiled view is still the old one')
  t.equal((await get(port, '/ready')).status, 200, 'still ready')
  const metrics = (await get(port, '/metrics')).body
  t.match(metrics, /^hostmesh_config_reloads_total\{result="failure"\} 1$/m)
  t.match(metrics, /^hostmesh_config_reloads_total\{result="success"\} 1$/m)
  t.match(metrics, /^hostmesh_config_generation 1$/m)
  t.match(metrics, /^hostmesh_config_last_reload_successful 0$/m)

  writeFileSync(join(dir, '20-services.yaml'), readFileSync(join(EXAMPLES, '20-services.yaml')))
  await until(async () => JSON.parse((await get(port, '/config_dump')).body).policy.generation === 2, 'the fixed reload')
  t.match((await get(port, '/metrics')).body, /^hostmesh_config_last_reload_successful 1$/m)
  t.equal(JSON.parse((await get(port, '/config_dump')).body).policy.lastError, null)
})

t.test('with a bad policy at start the daemon runs but is not ready until it is fixed', async (t) => {
  const { config, dir, port } = await setup('bad')
  const daemon = await Daemon.start({ configPath: config, logDest: silent })
  t.teardown(() => daemon.stop('test'))
  const ready = await get(port, '/ready')
  t.equal(ready.status, 503)
  t.same(JSON.parse(ready.body).waitingFor, ['policy', 'certificates'], 'certificates wait for a policy that names the local identities')
  t.equal(JSON.parse((await get(port, '/config_dump')).body).policy.snapshot, null)
  writeFileSync(join(dir, '30-routes.yaml'), readFileSync(join(EXAMPLES, '30-routes.yaml')))
  await until(async () => (await get(port, '/ready')).status === 200, 'readiness')
  t.pass('ready once the policy is fixed')
})

t.test('SIGHUP makes `hostmesh run` reload now', async (t) => {
  const { config, port } = await setup('good')
  const child = spawn(process.execPath, [CLI, 'run', '--config', config], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.teardown(() => { child.kill('SIGKILL') })
  await until(async () => out.includes('hostmesh ready'), 'the daemon')
  child.kill('SIGHUP')
  await until(async () => /"reason":"SIGHUP".*"msg":"policy loaded"/.test(out), 'the SIGHUP reload')
  t.equal(JSON.parse((await get(port, '/config_dump')).body).policy.generation, 2)
  // SIGHUP during the drain must not kill the process (its default action would).
  const { connect } = await import('node:net')
  const held = connect(port, '127.0.0.1', () => held.write('POST /x HTTP/1.1\r\nhost: x\r\ncontent-length: 10\r\n\r\n12'))
  held.on('error', () => {})
  await new Promise((r) => setTimeout(r, 100))
  const exitInfo = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  child.kill('SIGTERM')
  await until(async () => out.includes('"msg":"draining"'), 'the drain')
  child.kill('SIGHUP')
  t.same(await exitInfo, { code: 0, signal: null }, 'drained and exited 0, not killed by SIGHUP')
  void exited
})
