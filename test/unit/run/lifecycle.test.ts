import { spawn } from 'node:child_process'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Daemon } from '../../../daemon/run/lifecycle.ts'
import { CLI } from '../../helpers/cli.ts'
import { logSink } from '../../helpers/log-sink.ts'
import { daemonPorts } from '../../helpers/ports.ts'

const dir = mkdtempSync(join(tmpdir(), 'hostmesh-run-'))

async function config(extra = ''): Promise<{ path: string; port: number }> {
  const ports = await daemonPorts()
  const port = ports.admin
  const path = join(dir, `hostmesh-${port}.yaml`)
  writeFileSync(path, `node: {name: node-a, addresses: [127.0.0.1]}\n${ports.yaml}drainSeconds: 1\n${extra}`)
  return { path, port }
}


t.test('the daemon starts ready with its admin port, logs JSON per component, and stops cleanly', async (t) => {
  const { path, port } = await config()
  const logs = logSink()
  const daemon = await Daemon.start({ configPath: path, logDest: logs.dest })
  t.equal(daemon.adminAddress.port, port)
  t.ok(Object.isFrozen(daemon.config))
  const ready = await fetch(`http://127.0.0.1:${port}/ready`)
  t.equal(ready.status, 200)
  await ready.body?.cancel()
  await daemon.stop('test')
  t.equal(daemon.readiness.ready, false, 'not ready once stopping')
  await t.rejects(fetch(`http://127.0.0.1:${port}/healthz`), 'admin port closed')
  t.equal(daemon.stop('again'), daemon.stop('again'), 'stop is idempotent')
  const lines = logs.lines()
  t.match(lines.find((l) => l.msg === 'hostmesh ready'), { level: 'info', node: 'node-a', component: 'run', admin: `127.0.0.1:${port}` })
  t.match(lines.find((l) => l.msg === 'draining'), { reason: 'test', drainSeconds: 1 })
  t.ok(lines.find((l) => l.msg === 'stopped'))
})

t.test('a connection still open when the drain time is up is cut off', async (t) => {
  const { path, port } = await config()
  const logs = logSink()
  const daemon = await Daemon.start({ configPath: path, logDest: logs.dest })
  // A request whose body never completes holds its connection open through the drain.
  const { request } = await import('node:http')
  const req = request({ host: '127.0.0.1', port, path: '/never', method: 'POST', headers: { 'content-length': '10' } })
  req.on('error', () => {})
  req.write('12345')
  await new Promise((r) => setTimeout(r, 50))
  const started = Date.now()
  await daemon.stop('test')
  const took = Date.now() - started
  t.ok(took >= 900, `waited for the drain time (${took} ms)`)
  t.ok(logs.lines().find((l) => l.msg === 'drain time is up; closing remaining connections'))
})

t.test('`hostmesh run` serves /ready, and exits 0 after SIGTERM', async (t) => {
  const { path, port } = await config()
  const child = spawn(process.execPath, [CLI, 'run', '--config', path], { stdio: ['ignore', 'pipe', 'pipe'] })
  let out = ''
  child.stdout.on('data', (d: Buffer) => { out += d.toString() })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  for (let i = 0; i < 200 && !out.includes('hostmesh ready'); i++) await new Promise((r) => setTimeout(r, 25))
  const res = await fetch(`http://127.0.0.1:${port}/ready`)
  t.equal(res.status, 200)
  await res.body?.cancel()
  child.kill('SIGTERM')
  t.equal(await exited, 0)
  t.match(out, /"msg":"stopped"/)
})

t.test('a policy saved while the daemon starts is followed once the start is done: the newest policy wins', async (t) => {
  const ports = await daemonPorts()
  const dir2 = mkdtempSync(join(tmpdir(), 'hostmesh-run-race-'))
  mkdirSync(join(dir2, 'policy.d'))
  const node = 'apiVersion: hostmesh.io/v1alpha1\nkind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n'
  const workload = (name: string, sa: string, uid: number): string => `apiVersion: hostmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: ${name}, namespace: t}\nspec: {node: node-a, serviceAccount: ${sa}, match: {uid: ${uid}}}\n`
  const policyFile = join(dir2, 'policy.d', 'p.yaml')
  writeFileSync(policyFile, [node, workload('a', 'a', 4242), workload('x', 'x', 4243)].join('---\n'))
  const path = join(dir2, 'hostmesh.yaml')
  writeFileSync(path, `node: {name: node-a, addresses: [127.0.0.1]}\n${ports.yaml}policyDir: ${dir2}/policy.d\ncertDir: ${dir2}/certs\n`)
  const starting = Daemon.start({ configPath: path, logDest: logSink().dest, env: {} })
  // Saved during the start (before, or while, its listeners are bound).
  setTimeout(() => writeFileSync(policyFile, [node, workload('a', 'a2', 4242)].join('---\n')), 20)
  const daemon = await starting
  t.teardown(() => daemon.stop('test'))
  const outbound = async (): Promise<(string | undefined)[]> => ((await (await fetch(`http://127.0.0.1:${ports.admin}/stats`)).json()) as { listeners: { name: string; workload?: string }[] }).listeners.filter((l) => l.name === 'outbound').map((l) => l.workload)
  for (let i = 0; i < 100 && (daemon.policy.current?.localWorkloads.length !== 1 || (await outbound()).length !== 1); i++) await new Promise((r) => setTimeout(r, 50))
  t.same(daemon.policy.current?.localWorkloads.map((l) => l.workload.identity), ['spiffe://cluster.local/ns/t/sa/a2'], 'the newest policy is in force')
  t.same(await outbound(), ['t/a'], 'and only its listeners are bound: x is gone, not brought back by the start')
})
