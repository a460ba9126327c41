// `hostmesh status` against a live in-process daemon with real traffic, and its errors when
// nothing (or something else) answers.
import { createServer, type Server } from 'node:http'
import type { AddressInfo } from 'node:net'
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { duration, type StatusData } from '../../../daemon/cli/status-report.ts'
import { dispatch } from '../../../daemon/cli/dispatch.ts'
import { Daemon } from '../../../daemon/run/lifecycle.ts'
import { logSink } from '../../helpers/log-sink.ts'
import { hostmesh, hostmeshAsync } from '../../helpers/cli.ts'
import { ID, liveDaemon } from '../../helpers/live-daemon.ts'
import { daemonPorts, freePort } from '../../helpers/ports.ts'

async function status(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number; out: string; err: string }> {
  const out: string[] = []
  const err: string[] = []
  const code = await dispatch(['status', ...args], { out: (s) => out.push(s), err: (s) => err.push(s), env })
  return { code, out: out.join(''), err: err.join('') }
}

t.test('a live daemon: ready, policy, identities, listeners, the last reload and the busiest services', async (t) => {
  const live = await liveDaemon(t)
  for (let i = 0; i < 4; i++) await live.echo('client', 2000)
  await t.rejects(live.open('intruder'), { code: 'HOSTMESH_ERR_TUNNEL', status: 401 })
  const res = await status(['--admin', live.base])
  t.equal(res.code, 0, res.err)
  t.equal(res.err, '')
  const text = res.out
  t.match(text, new RegExp(`^hostmesh node-a at ${live.base}: READY; up \\d+s\\n`))
  t.match(text, new RegExp(`^Policy: generation 1 from ${live.policyDir} \\(1 file, hash [0-9a-f]{12}\\), loaded \\d+s ago$`, 'm'))
  t.match(text, /^ {2}last reload: success \(start\) \d+s ago, [\d.]+ ms; reloads so far: 1 success, 0 failure, \d+ unchanged$/m)
  t.match(text, /^Identities \(certificates: ca mode, .+\/certs\):$/m)
  for (const sa of ['client', 'echo', 'intruder']) t.match(text, new RegExp(`^ {2}${ID(sa).replaceAll('/', '\\/')} +Available +expires in 23h59m \\(`, 'm'))
  t.match(text, /^ {2}hbone +\[::\]:\d+ +2 open, 0 tunnels$/m, 'the test\'s pooled HBONE sessions (client, intruder) stay open')
  t.match(text, /^ {2}outbound +127\.0\.0\.1:\d+.* +0 open +t\/echo$/m)
  t.match(text, /^Top services by connection rate \(last 60 s\):\n {2}inbound +echo\.t +[\d.]+\/s +errors 20\.0% +opened 5 +active 0 +refused 1 +sent 8\.0 kB +received 8\.0 kB$/m)
  t.match(text, /^Top services by error rate \(last 60 s\):\n {2}inbound +echo\.t /m)

  const json = JSON.parse((await status(['--admin', live.base, '--json'])).out) as StatusData
  t.equal(json.admin, live.base)
  t.match(json.ready, { ready: true, waitingFor: [] })
  t.match(json.stats, { node: 'node-a', policy: { generation: 1 } })
  t.match(json.certs, { mode: 'ca', identities: [{ identity: ID('client') }, { identity: ID('echo') }, { identity: ID('intruder') }] })
  t.match(json.policy, { generation: 1, files: [{ path: /live\.yaml$/ }], lastError: null })
  t.notOk('snapshot' in json.policy, 'the compiled snapshot is left out')

  // The admin address from the node config, as the real executable finds it.
  const child = await hostmeshAsync(['status', '--config', live.configPath])
  t.equal(child.status, 0, child.stderr)
  t.match(child.stdout, new RegExp(`^hostmesh node-a at ${live.base}: READY`))
  t.match((await hostmeshAsync(['status'], { HOSTMESH_CONFIG: live.configPath })).stdout, /: READY;/, 'HOSTMESH_CONFIG too')
})

t.test('a daemon that is not ready says what it waits for; no policy in force yet', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-status-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  mkdirSync(join(dir, 'policy.d'))
  writeFileSync(join(dir, 'policy.d', 'broken.yaml'), 'kind: Nonsense\n')
  const ports = await daemonPorts()
  writeFileSync(join(dir, 'hostmesh.yaml'), `node: {name: node-a, addresses: [127.0.0.1]}\n${ports.yaml}policyDir: ${join(dir, 'policy.d')}\ncertDir: ${join(dir, 'certs')}\ndrainSeconds: 1\n`)
  const daemon = await Daemon.start({ configPath: join(dir, 'hostmesh.yaml'), logDest: logSink().dest })
  t.teardown(() => daemon.stop('test'))
  const { code, out } = await status(['--config', join(dir, 'hostmesh.yaml')])
  t.equal(code, 0, 'the daemon answered: not ready is a state, not a failure of the command')
  t.match(out, /^hostmesh node-a at http:\/\/127\.0\.0\.1:\d+: NOT READY, waiting for policy, certificates; up /)
  t.match(out, /^Policy: none in force yet \(policy dir .*policy\.d\)$/m)
  t.match(out, /^ {2}FAILED reload \d+s ago \(start\): \d+ problems?; no policy in force\n {4}.*broken\.yaml:1:\d+: /m)
  t.match(out, /^ {2}none: no local workload in the policy$/m)
})

t.test('a failed reload is listed with file:line:col; a new service has no rate until sampled', async (t) => {
  const live = await liveDaemon(t)
  writeFileSync(join(live.policyDir, 'broken.yaml'), 'apiVersion: hostmesh.io/v1alpha1\nkind: Service\nmetadata: {name: x, namespace: t}\nspec: {ports: []}\n')
  await live.daemon.policy.reload('SIGHUP')
  const { code, out } = await status(['--admin', live.base, '--top', '1'])
  t.equal(code, 0)
  t.match(out, /^ {2}last reload: failure \(SIGHUP\) \d+s ago/m)
  t.match(out, /^ {2}FAILED reload \d+s ago \(SIGHUP\): \d+ problems?; generation 1 stays in force\n {4}.*broken\.yaml:4:\d+: /m)
  t.match(out, /^Services: no connections yet$/m)
})

t.test('errors: nothing listening (exit 1, naming the URL), not an admin port, bad options (exit 2)', async (t) => {
  const port = await freePort()
  const down = await status(['--admin', `http://127.0.0.1:${port}`])
  t.equal(down.code, 1)
  t.equal(down.out, '')
  t.match(down.err, `hostmesh status: cannot reach the hostmesh admin port at http://127.0.0.1:${port} (ECONNREFUSED); is the daemon running?`)
  t.match(down.err, /\[HOSTMESH_ERR_ADMIN_REQUEST\]\n$/)
  const child = hostmesh(['status', '--admin', `http://127.0.0.1:${port}`])
  t.equal(child.status, 1, 'the real executable exits 1 too')
  t.match(child.stderr, `cannot reach the hostmesh admin port at http://127.0.0.1:${port}`)

  const other: Server = createServer((req, res) => {
    if (req.url === '/ready') return void res.end('<html>not hostmesh</html>')
    res.writeHead(404, { 'content-type': 'application/json' }).end('{"error":"no admin endpoint"}')
  })
  await new Promise<void>((r) => other.listen(0, '127.0.0.1', r))
  t.teardown(() => { other.close() })
  const url = `http://127.0.0.1:${(other.address() as AddressInfo).port}`
  const wrong = await status(['--admin', url])
  t.equal(wrong.code, 1)
  t.match(wrong.err, new RegExp(`${url}/(ready answered 200 with something that is not JSON; is ${url} a hostmesh admin port\\?|\\w+ answered 404: no admin endpoint)`))

  for (const [args, message] of [
    [['--admin', 'localhost:15000'], /--admin "localhost:15000" is not an http:\/\/ URL \(e\.g\. http:\/\/127\.0\.0\.1:15000\)/],
    [['--admin', 'ftp://127.0.0.1/'], /is not an http:\/\/ URL/],
    [['--top', '0'], /--top "0" is not a whole number from 1 to 9999/],
    [['extra'], /unexpected argument "extra"/],
  ] as const) {
    const r = await status([...args])
    t.equal(r.code, 2, args.join(' '))
    t.match(r.err, message)
    t.match(r.err, /Usage: hostmesh status/)
  }
  const missing = await status(['--config', '/nonexistent/hostmesh.yaml'])
  t.equal(missing.code, 78, 'an explicit node config that cannot be read is a config error')
})

t.test('durations: the two largest units', async (t) => {
  t.same([0, 4.2, 62, 3723, 93_784, 86_400].map(duration), ['0s', '4s', '1m2s', '1h2m', '1d2h', '1d'])
})
