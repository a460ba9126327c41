// `hostmesh iptables apply|remove` on a real host (network namespace) with the example policy:
// the rules it applies capture exactly what they should, applying twice changes nothing, and
// remove leaves no trace, in IPv4 and IPv6.
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { testNet } from '../../scripts/netns/hosts.ts'
import { CLI } from '../helpers/cli.ts'
import { e2eSkip } from '../helpers/e2e.ts'

const LISTENER = new URL('./fixtures/origdst-listener.ts', import.meta.url).pathname
const EXAMPLES = new URL('../../policy/examples/', import.meta.url).pathname
const DAEMON_UID = 999 // the daemon's uid in this test: never captured

t.test('the capture rules from the example policy, on node-c', { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: ['node-a', 'node-b', 'node-c'] })
  const c = net.host('node-c')
  const a = net.host('node-a')
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-ipt-'))
  cpSync(EXAMPLES, join(dir, 'policy.d'), { recursive: true })
  // A workload that (wrongly) lists the HBONE port: the RETURN for 15008 must still win.
  writeFileSync(join(dir, 'policy.d', '70-odd.yaml'), 'apiVersion: hostmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: zz-odd, namespace: shop}\nspec: {node: node-c, serviceAccount: odd, match: {uid: 2004}, ports: [{port: 15008}]}\n')
  const config = join(dir, 'hostmesh.yaml')
  writeFileSync(config, `node: {name: node-c, addresses: [${c.ipv4}, "${c.ipv6}"]}\npolicyDir: ${join(dir, 'policy.d')}\ncertDir: ${join(dir, 'certs')}\n`)
  const hostmesh = (...args: string[]) => c.mustExec([process.execPath, CLI, 'iptables', ...args, '--config', config, '--daemon-uid', String(DAEMON_UID)])
  const save = async (): Promise<string> => {
    const v4 = (await c.mustExec(['iptables-save', '-t', 'nat'])) + (await c.mustExec(['iptables-save', '-t', 'filter']))
    const v6 = (await c.mustExec(['ip6tables-save', '-t', 'nat'])) + (await c.mustExec(['ip6tables-save', '-t', 'filter']))
    // Dates and packet counters differ between dumps; the rules must not.
    return `${v4}\n${v6}`.split('\n').filter((l) => !l.startsWith('#')).map((l) => l.replace(/\[\d+:\d+\]/, '')).join('\n')
  }

  t.match(await hostmesh('apply'), /applied the capture rules for 3 local workloads of node-c \(IPv4 and IPv6\); the daemon's uid 999 is not captured/)
  const first = await save()
  for (const want of [
    '-A OUTPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate DNAT -j HOSTMESH_GUARD',
    '-A OUTPUT -p tcp -j HOSTMESH_OUTPUT',
    '-A PREROUTING -p tcp -j HOSTMESH_PREROUTING',
    `-A HOSTMESH_OUTPUT -m owner --uid-owner ${DAEMON_UID} -j RETURN`,
    '-A HOSTMESH_OUTPUT -p tcp -m owner --uid-owner 2002 -m comment --comment "shop/payments-v2" -j REDIRECT --to-ports 15002',
    '-A HOSTMESH_PREROUTING -p tcp -m tcp --dport 15008 -j RETURN',
    '-A HOSTMESH_PREROUTING -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 8080 -m comment --comment "shop/payments-v2" -j REDIRECT --to-ports 15006',
    '-A HOSTMESH_PREROUTING -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 15008 -m comment --comment "shop/zz-odd" -j REDIRECT --to-ports 15006',
  ]) t.ok(first.includes(want), `has: ${want}`)
  await hostmesh('apply')
  t.equal(await save(), first, 'applying twice gives identical rules, no duplicates')

  // What the rules do, with listeners that report each connection's original destination.
  for (const port of ['15002', '15006', '15008']) await c.spawn([process.execPath, LISTENER, port]).waitFor(/listening/)
  const curl = async (host: typeof c, url: string, uid?: number) => {
    const r = await host.exec(['curl', '-sS', '-g', '--connect-timeout', '2', '-m', '4', url], uid === undefined ? {} : { uid, gid: uid })
    return r.code === 0 ? JSON.parse(r.stdout) as { address: string; port: number } : { error: r.stderr.trim() }
  }
  t.same(await curl(c, 'http://10.96.0.20:7000/', 2002), { address: '10.96.0.20', port: 7000, family: 4 }, 'payments-v2 (uid 2002) → its outbound port 15002, original destination kept')
  t.same(await curl(c, 'http://[fd96::20]:7000/', 2002), { address: 'fd96::20', port: 7000, family: 6 }, 'the same over IPv6')
  t.match(await curl(c, 'http://10.96.0.20:7000/', DAEMON_UID), { error: /timed out|Connection refused|Failed to connect/ }, 'another uid is not captured')
  t.same(await curl(c, 'http://127.0.0.1:15002/', 2002), { address: '127.0.0.1', port: 15002, family: 4 }, 'loopback is not captured (the listener sees itself)')
  t.same(await curl(a, `http://${c.ipv4}:8080/`), { address: c.ipv4, port: 8080, family: 4 }, 'plaintext from another host to a workload port → 15006')
  t.same(await curl(a, `http://[${c.ipv6}]:9090/`), { address: c.ipv6, port: 9090, family: 6 }, 'the same over IPv6')
  t.same(await curl(a, `http://${c.ipv4}:15008/`), { address: c.ipv4, port: 15008, family: 4 }, '15008 itself is never redirected')

  // A workload that sorts first arrives: a fresh assignment would move everyone up one port,
  // but the live rules (which a running daemon listens behind) keep theirs.
  writeFileSync(join(dir, 'policy.d', '71-first.yaml'), 'apiVersion: hostmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: aa-first, namespace: shop}\nspec: {node: node-c, serviceAccount: first, match: {uid: 2007}}\n')
  await hostmesh('apply')
  const moved = await save()
  t.ok(moved.includes('-A HOSTMESH_OUTPUT -p tcp -m owner --uid-owner 2002 -m comment --comment "shop/payments-v2" -j REDIRECT --to-ports 15002'), 'payments-v2 keeps 15002')
  t.ok(moved.includes('-A HOSTMESH_OUTPUT -p tcp -m owner --uid-owner 2007 -m comment --comment "shop/aa-first" -j REDIRECT --to-ports 15004'), 'the newcomer takes the next free port')

  // The owner guard. A connection reset from a workload's outbound port (the daemon resets one
  // over the workload's cap) leaves a conntrack entry in CLOSE for 10 s, NATed to that port,
  // whose last packet is the reset from the reply side. A new SYN on the same tuple reuses that
  // entry and its NAT, whoever sends it: another uid would land on that port and go out as
  // that workload. The guard refuses it instead.
  const bound = async (uid: number, sport: number, url: string) => {
    const r = await c.exec(['curl', '-sS', '-i', '-g', '--local-port', String(sport), '--connect-timeout', '2', '-m', '4', url], { uid, gid: uid })
    return r.code === 0 ? { listener: /^x-listener: (\d+)/im.exec(r.stdout)?.[1] } : { error: r.stderr.trim() }
  }
  const resetter = c.spawn([process.execPath, LISTENER, '15004', 'reset-first'])
  await resetter.waitFor(/listening/)
  for (const [family, sport, url] of [[4, 41234, 'http://10.96.0.20:7000/'], [6, 41235, 'http://[fd96::20]:7000/']] as const) {
    // curl says "Couldn't connect" when the reset comes before it has looked at its connect.
    t.match(await bound(2007, sport, url), { error: /reset by peer|Recv failure|Couldn't connect/ }, `IPv${family}: aa-first (uid 2007): its connection fails`)
    t.ok(await resetter.waitFor(new RegExp(`^reset ${sport}$`, 'm')), `IPv${family}: reset by its outbound port, after the handshake`)
    const stolen = await bound(2002, sport, url)
    t.notSame(stolen, { listener: '15004' }, `IPv${family}: payments-v2 (uid 2002) reusing that tuple is not carried to aa-first's port: ${JSON.stringify(stolen)}`)
    t.match(stolen, { error: /Connection refused|Failed to connect/ }, `IPv${family}: the guard refuses it (fail closed)`)
    const tool = family === 4 ? 'iptables' : 'ip6tables'
    t.match(await c.mustExec([tool, '-w', '5', '-t', 'filter', '-L', 'HOSTMESH_GUARD', '-v', '-x', '-n']), /^\s*1\s+\d+\s+REJECT\b.*shop\/aa-first/m, `IPv${family}: once, by aa-first's guard rule`)
    t.same(await bound(2007, sport, url), { listener: '15004' }, `IPv${family}: aa-first itself reusing its tuple is carried to its own port`)
  }
  t.same(await curl(c, 'http://10.96.0.20:7000/', 2002), { address: '10.96.0.20', port: 7000, family: 4 }, 'payments-v2 from another source port: its own port, as before')

  // Loop avoidance: were the daemon to run as 2002, its own connections must escape capture.
  await c.mustExec([process.execPath, CLI, 'iptables', 'apply', '--config', config, '--daemon-uid', '2002'])
  t.match(await curl(c, 'http://10.96.0.20:7000/', 2002), { error: /timed out|Connection refused|Failed to connect/ }, 'the daemon\'s uid RETURNs before any REDIRECT')
  t.notSame(await save(), first, 'a re-apply replaced the rules')

  t.match(await c.mustExec([process.execPath, CLI, 'iptables', 'remove']), /removed the HOSTMESH_OUTPUT, HOSTMESH_PREROUTING and HOSTMESH_GUARD chains and 6 jumps/)
  const after = await save()
  t.notMatch(after, /HOSTMESH/, 'remove leaves no rule or chain, IPv4 and IPv6')
  t.match(await c.mustExec([process.execPath, CLI, 'iptables', 'remove']), /and 0 jumps/, 'remove again is harmless')
})
