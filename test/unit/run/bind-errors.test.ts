// A port that cannot be bound fails the start with its own error and exit code (75), and
// releases everything bound before it.
import { existsSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Daemon } from '../../../daemon/run/lifecycle.ts'
import { adminRequest } from '../../helpers/admin.ts'
import { hostmesh, hostmeshAsync } from '../../helpers/cli.ts'
import { logSink } from '../../helpers/log-sink.ts'
import { daemonPorts } from '../../helpers/ports.ts'

t.test('the HBONE port held by another process: HOSTMESH_ERR_LISTEN, exit 75, admin released', async (t) => {
  const ports = await daemonPorts()
  const holder = createServer()
  await new Promise<void>((resolve) => holder.listen({ port: ports.hbone, host: '::', ipv6Only: false }, resolve))
  t.teardown(() => holder.close())
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-bind-'))
  const path = join(dir, 'hostmesh.yaml')
  writeFileSync(path, `node: {name: node-a, addresses: [127.0.0.1]}\n${ports.yaml}policyDir: ${dir}/policy.d\ncertDir: ${dir}/certs\n`)
  await t.rejects(Daemon.start({ configPath: path, logDest: logSink().dest, env: {} }), { code: 'HOSTMESH_ERR_LISTEN', message: new RegExp(`:${ports.hbone}: EADDRINUSE`) })
  await t.rejects(fetch(`http://127.0.0.1:${ports.admin}/healthz`), 'the admin port was released')
  t.notOk(existsSync(ports.socket), 'and the admin socket removed')
  const res = hostmesh(['run', '--config', path])
  t.equal(res.status, 75, res.stderr)
  t.match(res.stderr, /hostmesh run: cannot listen on .*EADDRINUSE.*\[HOSTMESH_ERR_LISTEN\]/)
})

t.test('an outbound port held by another process: the start fails, releases every listener and the process exits 75', async (t) => {
  const ports = await daemonPorts()
  const holder = createServer()
  await new Promise<void>((resolve) => holder.listen({ port: ports.outboundBase, host: '::1' }, resolve))
  t.teardown(() => holder.close())
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-bind-out-'))
  mkdirSync(join(dir, 'policy.d'))
  writeFileSync(join(dir, 'policy.d', 'p.yaml'), [
    'apiVersion: hostmesh.io/v1alpha1\nkind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n',
    'apiVersion: hostmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: app, namespace: t}\nspec: {node: node-a, serviceAccount: app, match: {uid: 4242}}\n',
  ].join('---\n'))
  const path = join(dir, 'hostmesh.yaml')
  writeFileSync(path, `node: {name: node-a, addresses: [127.0.0.1]}\n${ports.yaml}policyDir: ${dir}/policy.d\ncertDir: ${dir}/certs\n`)
  await t.rejects(Daemon.start({ configPath: path, logDest: logSink().dest, env: {} }), { code: 'HOSTMESH_ERR_LISTEN', message: new RegExp(`::1:${ports.outboundBase}: EADDRINUSE`) })
  for (const port of [ports.hbone, ports.inboundPlaintext, ports.outboundBase]) {
    const again = createServer()
    await new Promise<void>((resolve, reject) => again.once('error', reject).listen({ port, host: '127.0.0.1' }, resolve))
    again.close()
    t.pass(`port ${port} was released (the half-bound outbound listener too)`)
  }
  const started = Date.now()
  const res = await hostmeshAsync(['run', '--config', path])
  t.equal(res.status, 75, res.stderr)
  t.ok(Date.now() - started < 15_000, 'and the process exits instead of hanging on a listener it bound')
})

t.test('an outbound port taken while running: /ready waits for "listeners", and binding is retried until it works', async (t) => {
  const ports = await daemonPorts()
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-bind-retry-'))
  mkdirSync(join(dir, 'policy.d'))
  const node = 'apiVersion: hostmesh.io/v1alpha1\nkind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n'
  const workload = (name: string, uid: number): string => `apiVersion: hostmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: ${name}, namespace: t}\nspec: {node: node-a, serviceAccount: ${name}, match: {uid: ${uid}}}\n`
  writeFileSync(join(dir, 'policy.d', 'p.yaml'), [node, workload('a', 4242)].join('---\n'))
  const path = join(dir, 'hostmesh.yaml')
  // /ready also waits for "certificates" here (there is no node CA): the checks are on "listeners".
  writeFileSync(path, `node: {name: node-a, addresses: [127.0.0.1]}\n${ports.yaml}policyDir: ${dir}/policy.d\ncertDir: ${dir}/certs\n`)
  const daemon = await Daemon.start({ configPath: path, logDest: logSink().dest, env: {} })
  t.teardown(() => daemon.stop('test'))
  const taken = createServer()
  await new Promise<void>((resolve) => taken.listen({ port: ports.outboundBase + 1, host: '127.0.0.1' }, resolve))
  writeFileSync(join(dir, 'policy.d', 'p.yaml'), [node, workload('a', 4242), workload('b', 4243)].join('---\n'))
  const waitingFor = (): readonly string[] => daemon.readiness.status().waitingFor
  for (let i = 0; i < 100 && !waitingFor().includes('listeners'); i++) await new Promise((r) => setTimeout(r, 50))
  t.ok(waitingFor().includes('listeners'), `b's port is taken: not ready (${waitingFor().join(', ')})`)
  await new Promise<void>((resolve) => taken.close(() => resolve()))
  for (let i = 0; i < 100 && waitingFor().includes('listeners'); i++) await new Promise((r) => setTimeout(r, 50))
  t.notOk(waitingFor().includes('listeners'), 'bound on a retry, without another policy change')
  const stats = await (await fetch(`http://127.0.0.1:${ports.admin}/stats`)).json() as { listeners: { name: string; workload?: string }[] }
  t.same(stats.listeners.filter((l) => l.name === 'outbound').map((l) => l.workload).sort(), ['t/a', 't/b'])
})

t.test('a second daemon with the admin.socket of a running one: HOSTMESH_ERR_ADMIN_BIND, exit 75, the socket stays the first\'s', async (t) => {
  const first = await daemonPorts()
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-bind-socket-'))
  const config = (name: string, yaml: string): string => {
    const path = join(dir, name)
    writeFileSync(path, `node: {name: node-a, addresses: [127.0.0.1]}\n${yaml}policyDir: ${dir}/policy.d\ncertDir: ${dir}/certs\ndrainSeconds: 1\n`)
    return path
  }
  const daemon = await Daemon.start({ configPath: config('first.yaml', first.yaml), logDest: logSink().dest, env: {} })
  t.teardown(() => daemon.stop('test'))
  const second = await daemonPorts()
  const res = await hostmeshAsync(['run', '--config', config('second.yaml', second.yaml.replace(second.socket, first.socket))])
  t.equal(res.status, 75, res.stderr)
  t.match(res.stderr, `hostmesh run: cannot bind the admin socket ${first.socket}: EADDRINUSE (a running process answers on it: another hostmesh with the same admin.socket?) [HOSTMESH_ERR_ADMIN_BIND]`)
  t.same((await adminRequest(first.socket, '/healthz')).body, { status: 'ok' }, 'the first daemon still answers on its socket')
  await t.rejects(fetch(`http://127.0.0.1:${second.admin}/healthz`), 'the second bound nothing that stayed')
  await daemon.stop('test')
  t.notOk(existsSync(first.socket), 'the socket file is removed on stop')
})
