// The mesh path on three real hosts (network namespaces), each running `hostmesh run` with
// its own node CA, the example policy and real iptables capture. Workloads run as their own
// uids: checkout (uid 2001) on node-a calls the payments VIP 10.96.0.20:7000, whose TCPRoute
// splits 90/10 between payments-v1 (node-b) and payments-v2 (node-c).
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { initRootCa, makeNodeCa } from '../../certs/ca-ops.ts'
import { NodeIssuer } from '../../certs/issuer.ts'
import { testNet, type HostProcess, type TestHost } from '../../scripts/netns/hosts.ts'
import { meshNodeConfigs } from '../../scripts/netns/mesh-nodes.ts'
import type { ClustersView } from '../../daemon/admin/clusters.ts'
import type { StatsView } from '../../daemon/admin/stats.ts'
import { CLI } from '../helpers/cli.ts'
import { e2eSkip } from '../helpers/e2e.ts'
import { accessLineProblems, accessLog, assertQuiet } from '../helpers/mesh-checks.ts'

const EXAMPLES = new URL('../../policy/examples/', import.meta.url).pathname
const SERVER = new URL('../../scripts/netns/workloads/identify-server.ts', import.meta.url).pathname
const CLIENT = new URL('../../scripts/netns/workloads/tcp-client.ts', import.meta.url).pathname
const TALLY = new URL('../../scripts/netns/workloads/tally-client.ts', import.meta.url).pathname
// Added to the example policy for these tests: a service over both payments versions with no
// route (failover), a second checkout workload on node-c (same identity; same-host calls),
// and a PERMISSIVE legacy workload on node-b.
const EXTRA = `apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: ledger-all, namespace: shop}
spec: {addresses: [10.96.0.50], ports: [{name: ledger, port: 7000, protocol: tcp}], selector: {app: payments}}
---
apiVersion: hostmesh.io/v1alpha1
kind: Workload
metadata: {name: checkout-c, namespace: shop, labels: {app: checkout-c}}
spec: {node: node-c, serviceAccount: checkout, match: {uid: 2006}}
---
apiVersion: hostmesh.io/v1alpha1
kind: Workload
metadata: {name: legacy, namespace: shop, labels: {app: legacy}}
spec: {node: node-b, serviceAccount: legacy, match: {uid: 2005}, ports: [{port: 9100}], mtls: {mode: PERMISSIVE}}
---
apiVersion: hostmesh.io/v1alpha1
kind: Workload
metadata: {name: checkout-ctr, namespace: shop, labels: {app: checkout-ctr}}
spec: {node: node-a, serviceAccount: checkout, match: {address: 172.30.0.2}}
`
const NODE = process.execPath

interface ClientResult { first: string | null; sent: number; echoed: number; error?: string }

t.test('three hosts: mTLS tunnels, TCPRoute split, authorization, telemetry', { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: ['node-a', 'node-b', 'node-c'] })
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-mesh-'))
  cpSync(EXAMPLES, join(dir, 'policy.d'), { recursive: true })
  writeFileSync(join(dir, 'policy.d', '60-e2e.yaml'), EXTRA)
  const configs = await meshNodeConfigs(net.hosts, dir, { policyDir: join(dir, 'policy.d'), extra: 'drainSeconds: 1\niptables: {checkInterval: 1s}\n' })
  const daemons = new Map<string, HostProcess>()
  for (const h of net.hosts) daemons.set(h.name, h.spawn([NODE, CLI, 'run', '--config', configs.get(h.name)!]))
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
  const v1 = b.spawn([NODE, SERVER, 'payments-v1', '7000'], { uid: 2002, gid: 2002 })
  await v1.waitFor(/listening/)
  await c.spawn([NODE, SERVER, 'payments-v2', '7000'], { uid: 2002, gid: 2002 }).waitFor(/listening/)
  const call = async (h: TestHost, uid: number, bytes = 5, target = '10.96.0.20', port = '7000'): Promise<ClientResult> =>
    JSON.parse(await h.mustExec([NODE, CLIENT, target, port, String(bytes)], { uid, gid: uid, timeoutMs: 30_000 })) as ClientResult

  await t.test('checkout reaches payments through the mesh; the server sees its local hostmesh', async (t) => {
    const r = await call(a, 2001)
    t.match(r, { sent: 5, echoed: 5 }, JSON.stringify(r))
    t.match(r.first, /^payments-v1 10\.77\.0\.12$|^payments-v2 10\.77\.0\.13$/, 'the workload saw the connection come from its own node\'s hostmesh')
  })

  await t.test('a container workload (matched by source address) is captured in PREROUTING', async (t) => {
    const ctr = await net.container(a, 'ctr')
    t.equal(ctr.address, '172.30.0.2')
    const r = JSON.parse(await ctr.mustExec([NODE, CLIENT, '10.96.0.20', '7000', '100'], { timeoutMs: 30_000 })) as ClientResult
    t.match(r, { first: /^payments-v[12] /, echoed: 100 }, JSON.stringify(r))
    t.match((await admin(a, '/metrics')).stdout, /istio_tcp_connections_opened_total\{reporter="source",source_workload="checkout-ctr",source_principal="spiffe:\/\/cluster\.local\/ns\/shop\/sa\/checkout",[^}]*connection_security_policy="mutual_tls"/)
  })

  await t.test('10 MB both ways with a half-close', async (t) => {
    const r = await call(a, 2001, 10 << 20)
    t.match(r, { sent: 10 << 20, echoed: 10 << 20 }, JSON.stringify({ ...r }))
  })

  await t.test('the same over IPv6, end to end', async (t) => {
    const r = await call(a, 2001, 1000, 'fd96::20')
    t.match(r, { sent: 1000, echoed: 1000 })
    t.match(r.first, /^payments-v1 fd77::12$|^payments-v2 fd77::13$/, 'the workload is reached over IPv6 too')
  })

  await t.test('authorization: fraud (not checkout) is refused, and the destination counts it', async (t) => {
    const r = await call(c, 2003)
    t.equal(r.first, null, `no data reaches fraud: ${JSON.stringify(r)}`)
    const metrics = (await admin(b, '/metrics')).stdout + (await admin(c, '/metrics')).stdout
    t.match(metrics, /istio_tcp_connections_closed_total\{reporter="destination",source_workload="fraud",source_principal="spiffe:\/\/cluster\.local\/ns\/shop\/sa\/fraud",destination_service="payments-v[12]\.shop",[^}]*response_flags="UAEX"\} 1/)
    const logs = daemons.get('node-b')!.output + daemons.get('node-c')!.output
    t.match(logs, /"peer":"spiffe:\/\/cluster\.local\/ns\/shop\/sa\/fraud".*"status":401.*"reason":"no ALLOW policy matched \(AuthorizationPolicy\/shop\/payments-from-checkout\)".*"msg":"connection denied by AuthorizationPolicy"/, 'the destination logs the denial and why')
    // The source reports the destination's 401 as what it is: a denial (UAEX) by that principal,
    // not an upstream failure.
    t.match((await admin(c, '/metrics')).stdout, /istio_tcp_connections_closed_total\{reporter="source",source_workload="fraud",source_principal="spiffe:\/\/cluster\.local\/ns\/shop\/sa\/fraud",destination_service="payments-v[12]\.shop",destination_workload="payments-v[12]",destination_principal="spiffe:\/\/cluster\.local\/ns\/shop\/sa\/payments",connection_security_policy="mutual_tls",response_flags="UAEX"\} 1/)
    const line = accessLog(daemons.get('node-c')!.output).find((l) => l.reporter === 'source' && (l.src as { workload: string }).workload === 'fraud')
    t.match(line, { responseFlags: 'UAEX', dst: { principal: 'spiffe://cluster.local/ns/shop/sa/payments' }, error: /^denied by the destination's AuthorizationPolicy: .*: 401$/ }, 'and logs it as a denial')
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

  await t.test('STRICT: plaintext from outside the mesh is refused at the workload port, on any of the host\'s addresses', async (t) => {
    const r = await call(a, 0, 5, '10.77.0.12')
    t.equal(r.first, null, `refused: ${JSON.stringify(r)}`)
    t.match((await admin(b, '/metrics')).stdout, /hostmesh_inbound_plaintext_refused_total\{reason="strict"\} 1/)
    // An address policy does not list (the workload listens on all of them).
    await b.mustExec(['ip', 'addr', 'add', '10.77.0.112/24', 'dev', 'eth0'])
    const other = await call(a, 0, 5, '10.77.0.112')
    t.equal(other.first, null, `refused on a secondary address too: ${JSON.stringify(other)}`)
    t.match((await admin(b, '/metrics')).stdout, /hostmesh_inbound_plaintext_refused_total\{reason="strict"\} 2/)
  })

  await t.test('dialling a workload by its own address still goes through the mesh and its policy', async (t) => {
    t.equal((await call(c, 2003, 5, '10.77.0.13')).first, null, 'fraud → payments-v2 on the same host, by address: refused')
    t.equal((await call(c, 2003, 5, '10.77.0.12')).first, null, 'fraud → payments-v1 on another host, by address: refused')
    t.match((await call(a, 2001, 5, '10.77.0.12')).first, /^payments-v1 10\.77\.0\.12$/, 'checkout by address: allowed, through the tunnel')
  })

  await t.test('source telemetry on node-a', async (t) => {
    const metrics = (await admin(a, '/metrics')).stdout
    t.match(metrics, /istio_tcp_connections_opened_total\{reporter="source",source_workload="checkout",source_principal="spiffe:\/\/cluster\.local\/ns\/shop\/sa\/checkout",destination_service="payments-v[12]\.shop",destination_workload="payments-v[12]",destination_principal="spiffe:\/\/cluster\.local\/ns\/shop\/sa\/payments",connection_security_policy="mutual_tls",response_flags="-"\} \d+/)
    t.match(daemons.get('node-a')!.output, /"access":"tcp","reporter":"source"/, 'an access-log line per connection')
  })

  const tally = async (h: TestHost, uid: number, target: string, n: number, concurrency = 10): Promise<{ counts: Record<string, number>; failed: number }> =>
    JSON.parse(await h.mustExec([NODE, TALLY, target, '7000', String(n), String(concurrency)], { uid, gid: uid, timeoutMs: 120_000 })) as { counts: Record<string, number>; failed: number }
  const generation = async (h: TestHost): Promise<number> => (JSON.parse((await admin(h, '/config_dump')).stdout) as { policy: { generation: number } }).policy.generation
  const untilGeneration = async (g: number): Promise<void> => {
    for (let i = 0; i < 100; i++) {
      if ((await Promise.all(net.hosts.map(generation))).every((x) => x >= g)) return
      await new Promise((r) => setTimeout(r, 100))
    }
    throw new Error(`policy generation ${g} not reached on every host`)
  }
  const edit = (file: string, from: string, to: string): void => {
    const path = join(dir, 'policy.d', file)
    const text = readFileSync(path, 'utf8')
    if (!text.includes(from)) throw new Error(`${file} has no "${from}"`)
    writeFileSync(path, text.replaceAll(from, to))
  }

  await t.test('a TCPRoute 80/20 split, edited in place, over 1,000 connections', async (t) => {
    const g = await generation(a)
    edit('30-routes.yaml', 'port: 7000, weight: 90}', 'port: 7000, weight: 80}')
    edit('30-routes.yaml', 'port: 7000, weight: 10}', 'port: 7000, weight: 20}')
    await untilGeneration(g + 1)
    const r = await tally(a, 2001, '10.96.0.20', 1000, 20)
    t.equal(r.failed, 0)
    // Binomial(1000, 0.8): sd 12.6; these bounds are ±4.7 sd.
    t.ok((r.counts['payments-v1'] ?? 0) >= 740 && (r.counts['payments-v1'] ?? 0) <= 860, `payments-v1 ${r.counts['payments-v1']} of 1000 (80% expected)`)
    t.equal((r.counts['payments-v1'] ?? 0) + (r.counts['payments-v2'] ?? 0), 1000)
  })

  await t.test('policy edits: an open connection is closed when revoked, new ones refused, then allowed again', async (t) => {
    const hold = a.spawn([NODE, CLIENT, '10.96.0.20', '7000', '-1'], { uid: 2001, gid: 2001 })
    await hold.waitFor(/"first":"payments-v/)
    const g = await generation(a)
    edit('40-policies.yaml', 'to: [{operation: {ports: ["7000"]}}]', 'to: [{operation: {ports: ["7001"]}}]')
    await untilGeneration(g + 1)
    await hold.waitFor(/"sent":/, 10_000)
    t.pass('the open connection was closed by the new policy')
    t.equal((await call(a, 2001)).first, null, 'a new connection is refused')
    edit('40-policies.yaml', 'to: [{operation: {ports: ["7001"]}}]', 'to: [{operation: {ports: ["7000"]}}]')
    await untilGeneration(g + 2)
    t.match((await call(a, 2001)).first, /^payments-v/, 'allowed again, no restart')
  })

  await t.test('same host: checkout-c on node-c reaches payments-v2 on node-c through its own hostmesh', async (t) => {
    const r = await tally(c, 2006, '10.96.0.50', 40)
    t.equal(r.failed, 0)
    t.ok((r.counts['payments-v2'] ?? 0) > 0, `some calls land on node-c itself: ${JSON.stringify(r.counts)}`)
    t.match((await admin(c, '/metrics')).stdout, /istio_tcp_connections_opened_total\{reporter="destination",source_workload="checkout-c",source_principal="spiffe:\/\/cluster\.local\/ns\/shop\/sa\/checkout",[^}]*connection_security_policy="mutual_tls"/, 'authorized with the real source identity')
  })

  await t.test('PERMISSIVE: plaintext from outside the mesh is forwarded', async (t) => {
    await b.spawn([NODE, SERVER, 'legacy', '9100'], { uid: 2005, gid: 2005 }).waitFor(/listening/)
    const r = await call(a, 0, 100, '10.77.0.12', '9100')
    t.match(r, { first: /^legacy /, echoed: 100 })
  })

  await t.test('bad peers at :15008: no client certificate, a foreign CA', async (t) => {
    const sni = 'payments.shop.serviceaccount.identity.cluster.local'
    await a.exec(['sh', '-c', `openssl s_client -connect 10.77.0.12:15008 -servername ${sni} -alpn h2 </dev/null`], { timeoutMs: 10_000 })
    const foreign = join(dir, 'foreign')
    await initRootCa({ dir: join(foreign, 'root'), trustDomain: 'cluster.local' })
    await makeNodeCa({ caDir: join(foreign, 'root'), node: 'node-a', outDir: join(foreign, 'node-a') })
    const m = await (await NodeIssuer.load(join(foreign, 'node-a'), 'cluster.local', 'node-a')).mint('spiffe://cluster.local/ns/shop/sa/checkout', 3_600_000)
    for (const [f, text] of [['cert.pem', m.certPem], ['key.pem', m.keyPem], ['chain.pem', m.chainPem]]) writeFileSync(join(foreign, f!), text!)
    await a.exec(['sh', '-c', `openssl s_client -connect 10.77.0.12:15008 -servername ${sni} -alpn h2 -cert ${join(foreign, 'cert.pem')} -key ${join(foreign, 'key.pem')} -cert_chain ${join(foreign, 'chain.pem')} </dev/null`], { timeoutMs: 10_000 })
    const metrics = (await admin(b, '/metrics')).stdout
    t.match(metrics, /hostmesh_tls_handshake_failures_total\{reason="no_certificate"\} [1-9]/)
    t.match(metrics, /hostmesh_tls_handshake_failures_total\{reason="untrusted"\} [1-9]/)
  })

  await t.test('unknown destinations: ALLOW_ANY passes through as plain TCP', async (t) => {
    const r = await call(a, 2001, 10, '10.77.0.12', '7777')
    t.match(r, { first: 'plain 10.77.0.11', echoed: 10 })
  })

  await t.test('failover: with payments-v1 down, every connection reaches payments-v2', async (t) => {
    const before = await tally(a, 2001, '10.96.0.50', 40)
    t.ok((before.counts['payments-v1'] ?? 0) > 0 && (before.counts['payments-v2'] ?? 0) > 0, `both endpoints serve: ${JSON.stringify(before.counts)}`)
    await v1.stop()
    const after = await tally(a, 2001, '10.96.0.50', 40)
    t.same(after, { counts: { 'payments-v2': 40 }, failed: 0 })
    t.match((await admin(a, '/metrics')).stdout, /hostmesh_outlier_ejections_total\{service_port="shop\/ledger-all:7000"\} [1-9]/, 'the dead endpoint was ejected by outlier detection')
    // The admin port's views of the same (docs/admin.md), and `hostmesh status` run on the host.
    const ledger = (JSON.parse((await admin(a, '/clusters')).stdout) as ClustersView).clusters.find((x) => x.name === 'shop/ledger-all:7000')!
    t.match(ledger.hosts.find((h) => h.workload === 'shop/payments-v1'), { health: 'EJECTED', ejections: 1, connectFailures: /[1-9]/ }, '/clusters shows payments-v1 ejected')
    t.match(ledger.hosts.find((h) => h.workload === 'shop/payments-v2'), { health: 'HEALTHY', connects: /[1-9]/ })
    const stats = JSON.parse((await admin(a, '/stats')).stdout) as StatsView
    t.match(stats.services.find((x) => x.direction === 'outbound' && x.service === 'ledger-all.shop'), { opened: 80, refused: 0, rate: { connectionsPerSecond: /./ } })
    const status = await a.exec([NODE, CLI, 'status'])
    t.match(status.stdout, /^hostmesh node-a at http:\/\/127\.0\.0\.1:15000: READY;/, status.stderr)
    t.match(status.stdout, /^ {2}outbound +ledger-all\.shop +[\d.]+\/s +errors 0\.0% +opened 80 /m)
  })

  await t.test('capture rules removed behind the daemon\'s back are restored', async (t) => {
    await c.mustExec(['ip6tables', '-w', '5', '-t', 'nat', '-F', 'HOSTMESH_PREROUTING'])
    for (let i = 0; i < 50 && !/-A HOSTMESH_PREROUTING/.test(await c.mustExec(['ip6tables', '-w', '5', '-t', 'nat', '-S', 'HOSTMESH_PREROUTING'])); i++) await new Promise((r) => setTimeout(r, 100))
    t.match(await c.mustExec(['ip6tables', '-w', '5', '-t', 'nat', '-S', 'HOSTMESH_PREROUTING']), /--comment "?shop\/payments-v2"? -j REDIRECT --to-ports 15006/, 'a flushed chain (its jump still there) is filled again')
    await c.mustExec(['iptables', '-w', '5', '-t', 'nat', '-D', 'OUTPUT', '-p', 'tcp', '-j', 'HOSTMESH_OUTPUT'])
    const inPlace = async (): Promise<boolean> => (await c.exec(['iptables', '-w', '5', '-t', 'nat', '-C', 'OUTPUT', '-p', 'tcp', '-j', 'HOSTMESH_OUTPUT'])).code === 0
    for (let i = 0; i < 50 && !(await inPlace()); i++) await new Promise((r) => setTimeout(r, 100))
    t.ok(await inPlace(), 'the jump is back')
    t.match(daemons.get('node-c')!.output, /"msg":"the capture rules were removed outside hostmesh; restoring them"/)
    t.match((await call(c, 2006, 10, '10.96.0.50')).first, /^payments-v2 /, 'capture works again: the VIP is reachable only through hostmesh')
    // A firewall that puts an ACCEPT of established traffic first would let a SYN reusing a
    // reset connection's entry (its state is ESTABLISHED) skip the owner guard.
    await c.mustExec(['iptables', '-w', '5', '-t', 'filter', '-I', 'OUTPUT', '1', '-m', 'conntrack', '--ctstate', 'ESTABLISHED,RELATED', '-j', 'ACCEPT'])
    const firstRule = async (): Promise<string> => (await c.mustExec(['iptables', '-w', '5', '-t', 'filter', '-S', 'OUTPUT'])).split('\n').find((l) => l.startsWith('-A OUTPUT ')) ?? ''
    for (let i = 0; i < 50 && !/-j HOSTMESH_GUARD$/.test(await firstRule()); i++) await new Promise((r) => setTimeout(r, 100))
    t.match(await firstRule(), /^-A OUTPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate DNAT -j HOSTMESH_GUARD$/, 'the owner guard is put back first in filter OUTPUT')
    t.equal((await c.mustExec(['iptables', '-w', '5', '-t', 'filter', '-S', 'OUTPUT'])).split('\n').filter((l) => l.endsWith('-j HOSTMESH_GUARD')).length, 1, 'once')
  })

  await t.test('REGISTRY_ONLY (after a restart with that setting) refuses unknown destinations', async (t) => {
    const outboundPort = async (): Promise<number | undefined> => (JSON.parse((await admin(a, '/config_dump')).stdout) as { policy: { snapshot: { localWorkloads: { workload: { key: string }; outboundPort: number }[] } } })
      .policy.snapshot.localWorkloads.find((l) => l.workload.key === 'shop/checkout')?.outboundPort
    const before = await outboundPort()
    await daemons.get('node-a')!.stop()
    const config = join(dir, 'node-a', 'hostmesh.yaml')
    writeFileSync(config, `${readFileSync(config, 'utf8')}outboundTrafficPolicy: REGISTRY_ONLY\n`)
    daemons.set('node-a', a.spawn([NODE, CLI, 'run', '--config', config]))
    for (let i = 0; i < 100 && !/"ready": true/.test((await admin(a, '/ready')).stdout); i++) await new Promise((r) => setTimeout(r, 100))
    t.equal(await outboundPort(), before, 'checkout kept its outbound port: the restarted daemon read it back from the live iptables rules')
    t.equal((await call(a, 2001, 10, '10.77.0.12', '7777')).first, null, 'refused')
    t.match((await admin(a, '/metrics')).stdout, /istio_tcp_connections_closed_total\{reporter="source",source_workload="checkout",[^}]*response_flags="NR"\} 1/)
    t.match((await call(a, 2001, 10, '10.96.0.50')).first, /^payments-v2 /, 'mesh services still work')
  })

  await t.test('every access-log line, from all three listeners on every host, has every documented field; nothing is left open', async (t) => {
    const lines = net.hosts.flatMap((h) => accessLog(daemons.get(h.name)!.output))
    t.same([...new Set(lines.map((l) => `${l.reporter}/${l.listener}`))].sort(), ['destination/hbone', 'destination/inbound-plaintext', 'source/outbound'], 'lines from the outbound, HBONE and plaintext listeners')
    const bad = lines.map((l) => ({ l, problems: accessLineProblems(l) })).filter((x) => x.problems.length > 0)
    t.same(bad.slice(0, 3).map((x) => `${x.problems.join(', ')} in ${JSON.stringify(x.l)}`), [], `${lines.length} lines, each with every field`)
    await assertQuiet(t, net.hosts)
  })
})
