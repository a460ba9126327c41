// `systemctl restart hostmesh` under load refuses no connection. systemd is not PID 1 here,
// so scripts/netns/service-manager.py plays its part exactly as the units configure it: it holds
// hostmesh.socket's ports (admin, :15006, :15008), passes them with LISTEN_FDS and
// LISTEN_FDNAMES, keeps the outbound sockets the daemon stores with FDSTORE=1, reads READY=1
// and WATCHDOG=1 (from the main pid only), and restarts with SIGTERM then a new start.
// Three namespace hosts run the example policy; checkout (uid 2001) on node-a calls the
// payments VIP without pause while node-a (outbound ports: fd store) and then node-b (:15008:
// socket unit) restart.
import { cpSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { meshNodeConfigs } from '../../scripts/netns/mesh-nodes.ts'
import { testNet, type HostProcess, type TestHost } from '../../scripts/netns/hosts.ts'
import { CLI } from '../helpers/cli.ts'
import { e2eSkip } from '../helpers/e2e.ts'
import { assertQuiet } from '../helpers/mesh-checks.ts'

const EXAMPLES = new URL('../../policy/examples/', import.meta.url).pathname
const MANAGER = new URL('../../scripts/netns/service-manager.py', import.meta.url).pathname
const CLIENT = new URL('../../scripts/netns/workloads/steady-client.ts', import.meta.url).pathname
const SLOW = new URL('../../scripts/netns/workloads/slow-client.ts', import.meta.url).pathname
const SERVER = new URL('../../scripts/netns/workloads/identify-server.ts', import.meta.url).pathname
const NODE = process.execPath

interface Event { event: string; pid?: number; fds?: number; names?: string[]; name?: string; kept?: number; code?: number; status?: string }
interface LoadResult { ok: number; refused: number; reset: number; timeout: number; short: number; other: number; servers: Record<string, number>; errors: string[] }

const events = (p: HostProcess): Event[] => p.output.split('\n').filter((l) => l.startsWith('{"event"')).map((l) => JSON.parse(l) as Event)

t.test('systemctl restart under load: no refused connection, outbound ports kept', { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: ['node-a', 'node-b', 'node-c'] })
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-restart-'))
  cpSync(EXAMPLES, join(dir, 'policy.d'), { recursive: true })
  const configs = await meshNodeConfigs(net.hosts, dir, { policyDir: join(dir, 'policy.d'), extra: 'drainSeconds: 5\n' })
  const managers = new Map<string, HostProcess>()
  for (const h of net.hosts) {
    const run = [NODE, CLI, 'run', '--config', configs.get(h.name)!]
    // The units' settings: hostmesh.socket's ListenStream= lines and ReusePort=yes, FileDescriptorStoreMax=, WatchdogSec=.
    managers.set(h.name, h.spawn(['python3', MANAGER, '--listen', '127.0.0.1:15000', '--listen', '[::]:15006', '--listen', '[::]:15008', '--reuse-port',
      '--fdstore-max', '512', '--watchdog-usec', '20000000', '--log', join(dir, h.name, 'daemon.log'), '--', ...run]))
  }
  const admin = (h: TestHost, path: string) => h.exec(['curl', '-sS', '-m', '2', `http://127.0.0.1:15000${path}`])
  const readyEvents = (name: string) => events(managers.get(name)!).filter((e) => e.event === 'ready').length
  const waitReady = async (name: string, count: number): Promise<void> => {
    for (let i = 0; i < 300 && readyEvents(name) < count; i++) await new Promise((r) => setTimeout(r, 50))
    t.equal(readyEvents(name), count, `${name}: READY=1 number ${count}`)
  }
  for (const h of net.hosts) await waitReady(h.name, 1)
  const [a, b, c] = [net.host('node-a'), net.host('node-b'), net.host('node-c')]
  t.match((await admin(a, '/ready')).stdout, /"ready": true/, 'READY=1 came when /ready said ready')
  await b.spawn([NODE, SERVER, 'payments-v1', '7000'], { uid: 2002, gid: 2002 }).waitFor(/listening/)
  await c.spawn([NODE, SERVER, 'payments-v2', '7000'], { uid: 2002, gid: 2002 }).waitFor(/listening/)

  const portOf = async (): Promise<number> => {
    const dump = JSON.parse((await admin(a, '/config_dump')).stdout) as { policy: { snapshot: { localWorkloads: { workload: { key: string }; outboundPort: number }[] } } }
    return dump.policy.snapshot.localWorkloads.find((l) => l.workload.key.endsWith('checkout'))!.outboundPort
  }
  const before = await portOf()
  const stored = events(managers.get('node-a')!).filter((e) => e.event === 'fdstore')
  t.ok(stored.some((e) => e.name === 'outbound/shop/checkout' && (e.kept ?? 0) >= 1), `node-a stored checkout's outbound socket(s): ${JSON.stringify(stored)}`)

  const load = a.exec([NODE, CLIENT, '10.96.0.20', '7000', '9000', '4'], { uid: 2001, gid: 2001, timeoutMs: 60_000 })
  await new Promise((r) => setTimeout(r, 1000))
  // In flight when SIGTERM comes: 3 s long, well inside drainSeconds (5).
  const slow = a.exec([NODE, SLOW, '10.96.0.20', '7000', '12', '250'], { uid: 2001, gid: 2001, timeoutMs: 30_000 })
  await new Promise((r) => setTimeout(r, 500))
  process.kill(managers.get('node-a')!.pid, 'SIGUSR1')
  await waitReady('node-a', 2)
  await new Promise((r) => setTimeout(r, 1000))
  process.kill(managers.get('node-b')!.pid, 'SIGUSR1')
  await waitReady('node-b', 2)
  const res = await load
  const r = JSON.parse(res.stdout) as LoadResult
  t.equal(res.code, 0, res.stderr)
  t.equal(r.refused, 0, `no connection refused across both restarts: ${JSON.stringify(r)}`)
  t.equal(r.reset + r.timeout + r.short + r.other, 0, `and none failed otherwise: ${JSON.stringify(r.errors)}`)
  t.ok(r.ok > 200, `connections kept flowing (${r.ok} ok; ${JSON.stringify(r.servers)})`)

  const sr = JSON.parse((await slow).stdout) as { ok: boolean; ms: number }
  t.match(sr, { ok: true, echoed: 12 * 16 }, `the connection in flight at SIGTERM completed during the drain: ${JSON.stringify(sr)}`)

  const ea = events(managers.get('node-a')!)
  const starts = ea.filter((e) => e.event === 'started')
  t.equal(starts.length, 2, 'node-a was started twice')
  t.ok(starts[1]!.names!.includes('outbound/shop/checkout'), `the second start got the stored outbound socket back: ${JSON.stringify(starts[1])}`)
  t.equal(await portOf(), before, 'checkout kept its outbound port across the restart')
  t.ok(ea.some((e) => e.event === 'stopping'), 'STOPPING=1 on SIGTERM')
  t.same(ea.filter((e) => e.event === 'exited').map((e) => e.code), [0], 'the old daemon exited 0 after its drain')
  t.ok(ea.some((e) => e.event === 'watchdog'), 'watchdog keep-alives arrive')
  for (const [name, m] of managers) {
    t.notOk(events(m).some((e) => e.event === 'rejected' || e.event === 'watchdog-timeout'), `${name}: no notification from another pid, no watchdog timeout`)
  }
  t.match((await admin(a, '/ready')).stdout, /"ready": true/)

  await t.test('a workload edited in place keeps accepting: its listener hands its sockets over', async (t) => {
    const policyDir = join(dir, 'policy.d')
    // checkout gets another identity; payments must still allow it.
    writeFileSync(join(policyDir, '61-checkout2.yaml'), 'apiVersion: hostmesh.io/v1alpha1\nkind: AuthorizationPolicy\nmetadata: {name: payments-from-checkout2, namespace: shop}\nspec: {selector: {matchLabels: {app: payments}}, action: ALLOW, rules: [{from: [{source: {principals: [cluster.local/ns/shop/sa/checkout2]}}]}]}\n')
    await new Promise((r) => setTimeout(r, 1500))
    const before = await portOf()
    const load = a.exec([NODE, CLIENT, '10.96.0.20', '7000', '4000', '4'], { uid: 2001, gid: 2001, timeoutMs: 60_000 })
    const slow = a.exec([NODE, SLOW, '10.96.0.20', '7000', '12', '250'], { uid: 2001, gid: 2001, timeoutMs: 30_000 })
    await new Promise((r) => setTimeout(r, 1000))
    const workloads = join(policyDir, '10-workloads.yaml')
    writeFileSync(workloads, readFileSync(workloads, 'utf8').replace('serviceAccount: checkout\n', 'serviceAccount: checkout2\n'))
    const r = JSON.parse((await load).stdout) as LoadResult
    t.equal(r.refused + r.reset + r.timeout + r.short + r.other, 0, `no connection failed across the edit: ${JSON.stringify(r)}`)
    t.match(JSON.parse((await slow).stdout), { ok: true }, 'the connection open during the edit finished')
    t.equal(await portOf(), before, 'same port')
    t.match((await admin(b, '/metrics')).stdout + (await admin(c, '/metrics')).stdout, /istio_tcp_connections_opened_total\{reporter="destination",source_workload="checkout",source_principal="spiffe:\/\/cluster\.local\/ns\/shop\/sa\/checkout2"/, 'new connections carry the new identity')
  })

  await t.test('a restart with a broken policy keeps the stored outbound sockets until a good one binds them', async (t) => {
    const broken = join(dir, 'policy.d', '99-broken.yaml')
    writeFileSync(broken, 'apiVersion: hostmesh.io/v1alpha1\nkind: Service\nmetadata: {name: broken, namespace: shop}\nspec: {ports: [{port: "nope"}]}\n')
    const port = await portOf()
    const m = managers.get('node-a')!
    const readyBefore = readyEvents('node-a')
    const mark = events(m).length
    process.kill(m.pid, 'SIGUSR1')
    for (let i = 0; i < 200 && !events(m).slice(mark).some((e) => e.event === 'started'); i++) await new Promise((r) => setTimeout(r, 50))
    await new Promise((r) => setTimeout(r, 2000))
    t.equal(readyEvents('node-a'), readyBefore, 'no READY=1 without a policy')
    t.notOk(events(m).slice(mark).some((e) => e.event === 'fdstore-remove'), 'nothing was dropped from the fd store')
    t.match(await a.mustExec(['ss', '-ltnH', `sport = :${port}`]), new RegExp(`127\\.0\\.0\\.1:${port}`), 'the outbound port still listens (systemd holds it)')
    // A connection now waits in the backlog; it is served once the policy is fixed.
    const waiting = a.exec([NODE, SLOW, '10.96.0.20', '7000', '2', '100'], { uid: 2001, gid: 2001, timeoutMs: 30_000 })
    await new Promise((r) => setTimeout(r, 500))
    rmSync(broken)
    await waitReady('node-a', readyBefore + 1)
    t.match(JSON.parse((await waiting).stdout), { ok: true }, 'the connection made while the policy was broken was served, not refused')
    t.equal(await portOf(), port, 'same port')
  })

  await t.test('across every restart, each connection was closed once and nothing is left open', async (t) => {
    await assertQuiet(t, net.hosts)
  })
})
