// The mesh path on three real hosts (network namespaces), each running `hostmesh run` with
// its own node CA, the example policy and real iptables capture. Workloads run as their own
// uids: checkout (uid 2001) on node-a calls the payments VIP 10.96.0.20:7000, whose TCPRoute
// splits 90/10 between payments-v1 (node-b) and payments-v2 (node-c).
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { initRootCa, makeNodeCa } from '../../certs/ca-ops.ts'
import { testNet, type HostProcess, type TestHost } from '../../scripts/netns/hosts.ts'
import { CLI } from '../helpers/cli.ts'
import { e2eSkip } from '../helpers/e2e.ts'

const EXAMPLES = new URL('../../policy/examples/', import.meta.url).pathname
const SERVER = new URL('./fixtures/identify-server.ts', import.meta.url).pathname
const CLIENT = new URL('./fixtures/tcp-client.ts', import.meta.url).pathname
const NODE = process.execPath

interface ClientResult { first: string | null; sent: number; echoed: number; error?: string }

t.test('three hosts: mTLS tunnels, TCPRoute split, authorization, telemetry', { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: ['node-a', 'node-b', 'node-c'] })
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-mesh-'))
  cpSync(EXAMPLES, join(dir, 'policy.d'), { recursive: true })
  await initRootCa({ dir: join(dir, 'root'), trustDomain: 'cluster.local' })
  const daemons = new Map<string, HostProcess>()
  for (const h of net.hosts) {
    const certDir = join(dir, h.name, 'certs')
    await makeNodeCa({ caDir: join(dir, 'root'), node: h.name, outDir: certDir })
    const config = join(dir, h.name, 'hostmesh.yaml')
    writeFileSync(config, `node: {name: ${h.name}, addresses: [${h.ipv4}, "${h.ipv6}"]}\npolicyDir: ${join(dir, 'policy.d')}\ncertDir: ${certDir}\ndrainSeconds: 1\n`)
    daemons.set(h.name, h.spawn([NODE, CLI, 'run', '--config', config]))
  }
  const admin = (h: TestHost, path: string) => h.exec(['curl', '-sS', '-m', '2', `http://127.0.0.1:15000${path}`])
  for (const h of net.hosts) {
    for (let i = 0; i < 100 && (await admin(h, '/ready')).stdout.indexOf('"ready": true') < 0; i++) await new Promise((r) => setTimeout(r, 100))
    const ready = await admin(h, '/ready')
    if (!/"ready": true/.test(ready.stdout)) t.comment(daemons.get(h.name)!.output.slice(-3000))
    t.match(ready.stdout, /"ready": true/, `${h.name} ready`)
  }
  const b = net.host('node-b')
  const c = net.host('node-c')
  const a = net.host('node-a')
  await b.spawn([NODE, SERVER, 'payments-v1', '7000'], { uid: 2002, gid: 2002 }).waitFor(/listening/)
  await c.spawn([NODE, SERVER, 'payments-v2', '7000'], { uid: 2002, gid: 2002 }).waitFor(/listening/)
  const call = async (h: TestHost, uid: number, bytes = 5, target = '10.96.0.20', port = '7000'): Promise<ClientResult> =>
    JSON.parse(await h.mustExec([NODE, CLIENT, target, port, String(bytes)], { uid, gid: uid, timeoutMs: 30_000 })) as ClientResult

  await t.test('checkout reaches payments through the mesh; the server sees its local hostmesh', async (t) => {
    const r = await call(a, 2001)
    t.match(r, { sent: 5, echoed: 5 }, JSON.stringify(r))
    t.match(r.first, /^payments-v1 10\.77\.0\.12$|^payments-v2 10\.77\.0\.13$/, 'the workload saw the connection come from its own node\'s hostmesh')
  })

  await t.test('10 MB both ways with a half-close', async (t) => {
    const r = await call(a, 2001, 10 << 20)
    t.match(r, { sent: 10 << 20, echoed: 10 << 20 }, JSON.stringify({ ...r }))
  })

  await t.test('the same over IPv6', async (t) => {
    const r = await call(a, 2001, 1000, 'fd96::20')
    t.match(r, { sent: 1000, echoed: 1000 })
  })

  await t.test('authorization: fraud (not checkout) is refused, and the destination counts it', async (t) => {
    const r = await call(c, 2003)
    t.equal(r.first, null, `no data reaches fraud: ${JSON.stringify(r)}`)
    const metrics = (await admin(b, '/metrics')).stdout + (await admin(c, '/metrics')).stdout
    t.match(metrics, /istio_tcp_connections_closed_total\{reporter="destination",source_workload="fraud",source_principal="spiffe:\/\/cluster\.local\/ns\/shop\/sa\/fraud",[^}]*response_flags="UAEX"\} 1/)
  })

  await t.test('on the wire between hosts: no plaintext payload (with a plaintext control)', async (t) => {
    const capture = async (run: () => Promise<unknown>): Promise<string> => {
      const file = join(dir, `cap-${Date.now()}.pcap`)
      const dump = b.spawn(['tcpdump', '-Z', 'root', '--immediate-mode', '-i', 'eth0', '-U', '-w', file, 'tcp'])
      await dump.waitFor(/listening on/)
      await run()
      await new Promise((r) => setTimeout(r, 300))
      await dump.stop('SIGINT')
      const text = await b.mustExec(['tcpdump', '-r', file, '-A', '-nn']) // payloads as ASCII
      return text
    }
    const MARKER = 'a'.repeat(64)
    await b.spawn([NODE, SERVER, 'plain', '7777']).waitFor(/listening/)
    const control = await capture(() => call(a, 0, 4000, '10.77.0.12', '7777'))
    t.ok(control.includes(MARKER), 'control: a plaintext connection shows its payload in the capture')
    const meshed = await capture(async () => {
      for (let i = 0; i < 3; i++) await call(a, 2001, 4000)
    })
    t.match(meshed, /\.15008/, 'the capture saw the HBONE traffic')
    t.notOk(meshed.includes(MARKER), 'the mesh traffic carries no plaintext marker')
  })

  await t.test('STRICT: plaintext from outside the mesh is refused at the workload port', async (t) => {
    const r = await call(a, 0, 5, '10.77.0.12')
    t.equal(r.first, null, `refused: ${JSON.stringify(r)}`)
    t.match((await admin(b, '/metrics')).stdout, /hostmesh_inbound_plaintext_refused_total\{reason="strict"\} 1/)
  })

  await t.test('source telemetry on node-a', async (t) => {
    const metrics = (await admin(a, '/metrics')).stdout
    t.match(metrics, /istio_tcp_connections_opened_total\{reporter="source",source_workload="checkout",source_principal="spiffe:\/\/cluster\.local\/ns\/shop\/sa\/checkout",destination_service="payments-v[12]\.shop",destination_workload="payments-v[12]",destination_principal="spiffe:\/\/cluster\.local\/ns\/shop\/sa\/payments",connection_security_policy="mutual_tls",response_flags="-"\} \d+/)
    t.match(daemons.get('node-a')!.output, /"access":"tcp","reporter":"source"/, 'an access-log line per connection')
  })
})
