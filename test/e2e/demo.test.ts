// `npm run demo` as a user runs it: the real scripts/demo.ts in a child process, as root. Its
// JSON report must show every step measured as expected, and once it has exited (normally, or
// by Ctrl-C after --keep) nothing of the run may remain: namespaces, processes, temp dir, rules.
import { spawn, spawnSync } from 'node:child_process'
import { existsSync, readFileSync } from 'node:fs'
import { connect as tcpConnect, createServer as tcpServer, type AddressInfo } from 'node:net'
import { connect as tlsConnect, createServer as tlsServer } from 'node:tls'
import t, { type Test } from 'tap'
import { run } from '../../scripts/netns/exec.ts'
import { isAlive } from '../../scripts/netns/names.ts'
import { demoArgs } from '../../scripts/demo/args.ts'
import { readPcap } from '../../scripts/demo/pcap.ts'
import { renderText, type DemoReport } from '../../scripts/demo/report.ts'
import { logLines, parseMetrics, total } from '../../scripts/demo/telemetry.ts'
import { occurrences, tlsConnections } from '../../scripts/demo/tls-wire.ts'
import { e2eSkip } from '../helpers/e2e.ts'
import { id, pki } from '../helpers/pki.ts'

const DEMO = new URL('../../scripts/demo.ts', import.meta.url).pathname
const CHECKOUT = 'spiffe://cluster.local/ns/shop/sa/checkout'
const PAYMENTS = 'spiffe://cluster.local/ns/shop/sa/payments'
const FRAUD = 'spiffe://cluster.local/ns/shop/sa/fraud'

interface DemoRun {
  readonly exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>
  /** Resolves with the report as soon as the JSON is complete on stdout. */
  readonly report: Promise<DemoReport>
  kill(signal: NodeJS.Signals): void
}

function startDemo(args: readonly string[]): DemoRun {
  const child = spawn(process.execPath, [DEMO, ...args], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  const timer = setTimeout(() => child.kill('SIGTERM'), 120_000)
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stdout: string; stderr: string }>((resolve) =>
    child.once('exit', (code, signal) => { clearTimeout(timer); resolve({ code, signal, stdout, stderr }) }))
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const report = new Promise<DemoReport>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
      if (!stdout.endsWith('}\n')) return
      try {
        resolve(JSON.parse(stdout) as DemoReport)
      } catch {
        // not complete yet
      }
    })
    void exit.then((e) => reject(new Error(`demo exited (${e.code ?? e.signal}) without a JSON report; stderr:\n${e.stderr}`)))
  })
  return { exit, report, kill: (signal) => child.kill(signal) }
}

/** Rule lines of the root namespace's nat table (no counters, no timestamps). */
async function rootNatRules(): Promise<string[]> {
  return (await run('iptables-save', ['-t', 'nat'])).stdout.split('\n').filter((l) => l.startsWith('-'))
}

async function assertGone(t: Test, r: DemoReport, natBefore: readonly string[]): Promise<void> {
  const list = (await run('ip', ['netns', 'list'])).stdout
  t.ok(r.namespaces.length === 4, `the report names the run's namespaces: ${r.namespaces.join(', ')}`)
  for (const ns of r.namespaces) t.notOk(list.split('\n').some((l) => l.split(' ')[0] === ns), `namespace ${ns} is gone`)
  t.notMatch(list, r.runId, 'no namespace of the run remains')
  for (let i = 0; i < 40 && r.pids.some(isAlive); i++) await new Promise((res) => setTimeout(res, 50))
  t.ok(r.pids.length >= 5, 'the report lists the daemons and servers')
  for (const pid of r.pids) t.notOk(isAlive(pid), `process ${pid} is gone`)
  t.notOk(existsSync(r.workDir), `temp dir ${r.workDir} is gone`)
  t.same(await rootNatRules(), natBefore, 'the root namespace\'s nat rules are as they were (the demo\'s rules lived in its namespaces)')
}

t.test('npm run demo', { skip: e2eSkip() }, async (t) => {
  await t.test('--json: every step as expected, then nothing remains', async (t) => {
    const natBefore = await rootNatRules()
    const demo = startDemo(['--json'])
    const r = await demo.report
    const exit = await demo.exit
    t.equal(exit.code, 0, `exit 0; failed steps: ${r.failedSteps.join(', ')}; ${JSON.stringify(r.steps.filter((s) => !s.ok))}`)
    t.ok(r.ok)
    t.same(r.steps.map((s) => [s.name, s.ok]), [['setup', true], ['mtls-call', true], ['canary', true], ['deny', true], ['failover', true], ['admin', true]])
    t.ok(r.durationMs < 60_000, `well under a minute: ${r.durationMs} ms`)

    t.match(r.call, { source: { workload: 'checkout', node: 'node-a', uid: 2001, principal: CHECKOUT }, sent: 4000, echoed: 4000 }, 'checkout called across hosts')
    t.match(r.call?.destination, { sourcePrincipal: CHECKOUT, sourceWorkload: 'checkout', workload: /^payments-v[12]$/, principal: PAYMENTS, node: /^node-[bc]$/ }, 'the destination hostmesh saw checkout\'s identity reach payments')

    const hbone = r.wire?.hbone ?? []
    t.ok(hbone.some((c) => c.serverHello?.version === 'TLS 1.3' && c.clientHello?.alpn.includes('h2') && c.server.endsWith(':15008')), `TLS 1.3 with ALPN h2 on :15008: ${JSON.stringify(hbone)}`)
    t.ok(hbone.some((c) => c.toServer.applicationDataBytes >= 4000 && c.toClient.applicationDataBytes >= 4000), 'the payload travelled as TLS application data')
    t.equal(r.wire?.markerInMesh, 0, 'the plaintext marker is absent from the mesh traffic')
    t.ok((r.wire?.markerInControl ?? 0) > 0, 'the plaintext control shows the marker: the capture would have seen it')

    const n = r.canary?.connections ?? 0
    const v1 = r.canary?.backends.find((b) => b.workload === 'payments-v1')?.observed ?? -1
    const v2 = r.canary?.backends.find((b) => b.workload === 'payments-v2')?.observed ?? -1
    t.ok(n >= 1000, `enough connections to tell 90/10 from 85/15: ${n}`)
    t.equal(r.canary?.failed, 0)
    t.equal(v1 + v2, n, 'every connection landed on v1 or v2')
    // Binomial(n, 0.9): these bounds are ±5 sd, whatever the report itself says.
    t.ok(Math.abs(v1 - 0.9 * n) <= 5 * Math.sqrt(n * 0.09), `v1 ${v1} / v2 ${v2} of ${n} is a 90/10 split`)
    t.same(r.canary?.backends.map((b) => b.countedByDestination), r.canary?.backends.map((b) => b.observed), 'the destination hostmeshes counted the same split')

    t.match(r.deny, { source: { principal: FRAUD }, reached: 0, statuses: { 401: r.deny?.attempts } }, 'fraud is refused with 401 every time')
    t.ok((r.deny?.attempts ?? 0) > 0 && r.deny?.refused === r.deny?.attempts, `every denial counted (UAEX): ${JSON.stringify(r.deny)}`)

    t.ok((r.failover?.before.counts['payments-v1'] ?? 0) > 0, 'payments-v1 served before it was stopped')
    t.same(r.failover?.after, { counts: { 'payments-v2': r.failover?.connections }, failed: 0 }, 'with payments-v1 stopped, every connection reached payments-v2')

    t.ok(r.talks.some((x) => x.sourcePrincipal === CHECKOUT && /^payments-v[12]$/.test(x.destinationWorkload) && x.outcome === 'connected'), 'who talked to whom: checkout → payments')
    t.ok(r.talks.some((x) => x.sourcePrincipal === FRAUD && x.outcome === 'denied'), 'who talked to whom: fraud denied')

    t.equal(r.admin.length, 3)
    for (const a of r.admin) {
      t.ok(a.commands.includes(`ip netns exec ${a.netns} curl -s http://127.0.0.1:15000/ready`), `${a.node}: the /ready command is listed`)
      t.ok(Object.values(a.answered).every((s) => s === 200), `${a.node}: its admin endpoints answered during the run`)
    }
    const text = renderText(r)
    t.match(text, /Result: every step behaved as expected/)
    t.match(text, `ip netns exec ${r.admin[0]!.netns} curl -s http://127.0.0.1:15000/ready`)
    await assertGone(t, r, natBefore)
  })

  await t.test('--keep: the printed admin commands work until Ctrl-C, which removes everything', async (t) => {
    const natBefore = await rootNatRules()
    const demo = startDemo(['--json', '--keep'])
    const r = await demo.report
    t.ok(r.ok && r.kept, 'every step as expected, and kept')
    const [cmd, ...args] = r.admin[1]!.commands.find((c) => c.endsWith('/ready'))!.split(' ')
    t.match((await run(cmd!, args)).stdout, /"ready": true/, 'a printed admin command works while the demo is kept')
    const [scmd, ...sargs] = r.admin[1]!.status.split(' ')
    t.match((await run(scmd!, sargs)).stdout, new RegExp(`^hostmesh ${r.admin[1]!.node} at http://127\\.0\\.0\\.1:15000: READY;`), 'the printed `hostmesh status` works too')
    t.ok((await run('ip', ['netns', 'list'])).stdout.includes(r.namespaces[1]!), 'the hosts are still there')
    demo.kill('SIGINT')
    const exit = await demo.exit
    t.equal(exit.code, 0, 'Ctrl-C after the report exits with the demo\'s result')
    t.match(exit.stderr, /removed everything the demo made/)
    await assertGone(t, r, natBefore)
  })
})

// The demo's pure pieces, which need no root: so they are checked on every machine.
t.test('demo pieces (no root needed)', async (t) => {
  t.same(demoArgs(['--json', '--keep']), { json: true, keep: true, help: false })
  t.same(demoArgs(['-h']), { json: false, keep: false, help: true })
  t.match(demoArgs(['--nope']), { error: /--nope/ })

  const failed: DemoReport = {
    ok: false, failedSteps: ['setup'], durationMs: 1200, runId: '', namespaces: [], workDir: '/tmp/x', pids: [], hosts: [],
    steps: [{ name: 'setup', title: 'Three hosts', ok: false, ms: 1200, lines: [], problems: ['hostmesh on node-a exited; its last log lines:\nboom'] }],
    call: null, wire: null, canary: null, deny: null, failover: null, talks: [], admin: [], kept: false,
  }
  const text = renderText(failed)
  t.match(text, /✗ 0\. Three hosts/)
  t.match(text, /FAILED: hostmesh on node-a exited; its last log lines:\n {7}boom/, 'a multi-line problem stays indented')
  t.match(text, /Result: FAILED at setup \(1\.2 s\)/)
  t.notMatch(text, /Who talked|Admin ports/, 'no empty sections')

  t.throws(() => readPcap(Buffer.from('not a capture')), /not a pcap file/)
  // One IPv6 connection to :15008: the SYN, then data out of order, a retransmission, and a
  // segment after a gap; the reply direction has no SYN (captured mid-stream).
  const frame = (src: number, dst: number, sport: number, dport: number, seq: number, syn: boolean, payload: string): Buffer => {
    const tcp = Buffer.alloc(20)
    tcp.writeUInt16BE(sport, 0); tcp.writeUInt16BE(dport, 2); tcp.writeUInt32BE(seq >>> 0, 4); tcp[12] = 5 << 4; tcp[13] = syn ? 0x02 : 0x18
    const body = Buffer.concat([tcp, Buffer.from(payload)])
    const ip6 = Buffer.alloc(40)
    ip6[0] = 0x60; ip6.writeUInt16BE(body.length, 4); ip6[6] = 6; ip6[7] = 64
    ip6.writeUInt16BE(0xfd77, 8); ip6[23] = src; ip6.writeUInt16BE(0xfd77, 24); ip6[39] = dst
    const eth = Buffer.alloc(14)
    eth.writeUInt16BE(0x86dd, 12)
    return Buffer.concat([eth, ip6, body])
  }
  const pcap = (frames: Buffer[]): Buffer => {
    const head = Buffer.alloc(24)
    head.writeUInt32LE(0xa1b2c3d4, 0); head.writeUInt16LE(2, 4); head.writeUInt16LE(4, 6); head.writeUInt32LE(262144, 16); head.writeUInt32LE(1, 20)
    return Buffer.concat([head, ...frames.flatMap((f) => { const r = Buffer.alloc(16); r.writeUInt32LE(f.length, 8); r.writeUInt32LE(f.length, 12); return [r, f] })])
  }
  const isn = 0xfffffff0 // wraps around 2^32 on the way
  const cap = readPcap(pcap([
    frame(0x11, 0x12, 40000, 15008, isn, true, ''),
    frame(0x11, 0x12, 40000, 15008, isn + 1 + 6, false, 'world'),
    frame(0x11, 0x12, 40000, 15008, isn + 1, false, 'hello '),
    frame(0x11, 0x12, 40000, 15008, isn + 1, false, 'hello '),
    frame(0x11, 0x12, 40000, 15008, isn + 1 + 100, false, 'after a gap'),
    frame(0x12, 0x11, 15008, 40000, 5000, false, 'reply'),
  ]))
  t.equal(cap.packets, 6)
  const up = cap.streams.find((s) => s.dport === 15008)!
  t.match(up, { src: 'fd77::11', dst: 'fd77::12', fromStart: true, gap: true })
  t.equal(up.data.toString(), 'hello world', 'reordered, retransmission dropped, stopped at the gap')
  t.match(cap.streams.find((s) => s.sport === 15008), { fromStart: false })
  t.equal(occurrences(cap.streams, 'hello'), 1)
  const [conn] = tlsConnections(cap.streams, 15008)
  t.match(conn, { client: '[fd77::11]:40000', server: '[fd77::12]:15008', fromStart: false, clientHello: null, serverHello: null, toServer: { records: {} } }, 'not TLS: no records read')

  // IPv4 with Ethernet padding (a short frame is padded to 60 bytes), in a big-endian file.
  const v4 = Buffer.alloc(14 + 20 + 20 + 2 + 8)
  v4.writeUInt16BE(0x0800, 12)
  v4[14] = 0x45; v4.writeUInt16BE(20 + 20 + 2, 16); v4[23] = 6
  Buffer.from([10, 77, 0, 11, 10, 77, 0, 12]).copy(v4, 26)
  v4.writeUInt16BE(40000, 34); v4.writeUInt16BE(7777, 36); v4[46] = 5 << 4
  v4.write('hi', 54)
  const head = Buffer.alloc(24)
  head.writeUInt32BE(0xa1b2c3d4, 0); head.writeUInt32BE(1, 20)
  const rec = Buffer.alloc(16)
  rec.writeUInt32BE(v4.length, 8)
  t.match(readPcap(Buffer.concat([head, rec, v4])).streams, [{ src: '10.77.0.11', dst: '10.77.0.12', sport: 40000, dport: 7777, fromStart: false, data: Buffer.from('hi') }], 'padding is not payload')
  head.writeUInt32BE(113, 20)
  t.throws(() => readPcap(head), /link type 113/)

  t.same(logLines('{"a":1}\n{"cut\nplain text\n{"b":2}\n'), [{ a: 1 }, { b: 2 }], 'partial and non-JSON lines are skipped')
  const samples = parseMetrics('# HELP x\nx{a="1",b="q\\"uote"} 2\nx{a="1"} 3\ny 7\n')
  t.equal(total(samples, 'x', { a: '1' }), 5)
  t.equal(total(samples, 'x', { b: 'q"uote' }), 2)
  t.equal(total(samples, 'y'), 7)
})

t.test('tls-wire reads a real TLS 1.3 handshake (Node client and server, relayed on loopback)', async (t) => {
  const p = pki(t)
  const leaf = await p.leaf(await p.node(await p.root('root'), 'node-b'), id('shop', 'payments'))
  const server = tlsServer({ cert: readFileSync(leaf.cert), key: readFileSync(leaf.key), ALPNProtocols: ['h2'] }, (s) => s.pipe(s))
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r))
  // The relay sees what a capture on the wire would: the raw bytes of each direction.
  const up: Buffer[] = []
  const down: Buffer[] = []
  const relay = tcpServer((c) => {
    const u = tcpConnect((server.address() as AddressInfo).port, '127.0.0.1')
    c.on('data', (d: Buffer) => { up.push(d); u.write(d) })
    u.on('data', (d: Buffer) => { down.push(d); c.write(d) })
    c.on('end', () => u.end()); u.on('end', () => c.end()); c.on('error', () => u.destroy()); u.on('error', () => c.destroy())
  })
  await new Promise<void>((r) => relay.listen(0, '127.0.0.1', r))
  t.teardown(() => { server.close(); relay.close() })
  const marker = 'secret-payload-marker'
  await new Promise<void>((resolve, reject) => {
    const c = tlsConnect({ port: (relay.address() as AddressInfo).port, host: '127.0.0.1', servername: 'payments.shop.serviceaccount.identity.cluster.local', ALPNProtocols: ['h2'], rejectUnauthorized: false }, () => c.write(marker))
    let echoed = ''
    c.on('data', (d: Buffer) => {
      echoed += d.toString()
      if (echoed === marker) c.end(resolve)
    })
    c.on('error', reject)
  })
  const stream = (data: Buffer[], toServer: boolean) => ({ src: '127.0.0.1', sport: toServer ? 40000 : 15008, dst: '127.0.0.1', dport: toServer ? 15008 : 40000, fromStart: true, gap: false, data: Buffer.concat(data) })
  const streams = [stream(up, true), stream(down, false)]
  const [conn] = tlsConnections(streams, 15008)
  t.match(conn, {
    client: '127.0.0.1:40000', server: '127.0.0.1:15008', fromStart: true,
    clientHello: { sni: 'payments.shop.serviceaccount.identity.cluster.local', alpn: ['h2'] },
    serverHello: { version: 'TLS 1.3', cipher: /^TLS_(AES|CHACHA20)_/ },
  })
  t.ok(conn!.clientHello!.versions.includes('TLS 1.3'), `the client offered TLS 1.3: ${conn!.clientHello!.versions.join(', ')}`)
  t.equal(conn!.toServer.records['handshake'], 1, 'only the ClientHello is a plaintext handshake record')
  t.ok(conn!.toServer.applicationDataBytes >= marker.length && conn!.toClient.applicationDataBytes >= marker.length, 'the payload went as application data')
  t.equal(occurrences(streams, marker), 0, 'and never in the clear')
})

t.test('exit codes before any work: usage 2, --help 0, not root 77', async (t) => {
  const demo = (args: readonly string[], asNobody = false) => {
    const argv = [process.execPath, DEMO, ...args]
    // (env -u: tap's coverage hooks live in this checkout, and it re-adds them to any child's env.)
    const [cmd, ...rest] = asNobody ? ['setpriv', '--reuid=65534', '--regid=65534', '--clear-groups', '--', 'env', '-u', 'NODE_OPTIONS', ...argv] : argv
    return spawnSync(cmd!, rest, { encoding: 'utf8', timeout: 20_000 })
  }
  const usage = demo(['--bogus'])
  t.equal(usage.status, 2)
  t.match(usage.stderr, /Unknown option '--bogus'[\s\S]*usage: npm run demo/)
  const help = demo(['--help'])
  t.equal(help.status, 0)
  t.match(help.stdout, /--keep/)
  const root = process.getuid?.() === 0
  const notRoot = demo([], root)
  if (root && notRoot.status !== 77 && /EACCES|permission denied/i.test(notRoot.stderr)) {
    t.comment(`not checked: nobody (uid 65534) cannot read this checkout, so the not-root case cannot be run here: ${notRoot.stderr.split('\n')[0]}`)
    return
  }
  t.equal(notRoot.status, 77, 'not root: exit 77 (EX_NOPERM)')
  t.match(notRoot.stderr, /needs root/)
})
