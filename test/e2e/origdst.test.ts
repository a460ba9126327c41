import t from 'tap'
import { testNet } from '../../scripts/netns/hosts.ts'
import { e2eSkip } from '../helpers/e2e.ts'

const LISTENER = new URL('./fixtures/origdst-listener.ts', import.meta.url).pathname

t.test('SO_ORIGINAL_DST through a real iptables REDIRECT', { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: 1 })
  const h1 = net.hosts[0]!
  const app = await net.user()
  // The per-workload capture shape: only this workload's uid is redirected to its port.
  await h1.mustExec(['iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '10.96.0.10', '--dport', '80',
    '-m', 'owner', '--uid-owner', String(app.uid), '-j', 'REDIRECT', '--to-ports', '15001'])
  await h1.mustExec(['ip6tables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', 'fd96::10', '--dport', '80',
    '-m', 'owner', '--uid-owner', String(app.uid), '-j', 'REDIRECT', '--to-ports', '15001'])
  const listener = h1.spawn([process.execPath, LISTENER, '15001'])
  await listener.waitFor(/listening 15001/)

  const curl = (url: string): Promise<{ code: number; stdout: string; stderr: string }> =>
    h1.exec(['curl', '-sS', '-g', '--connect-timeout', '2', '-m', '5', url], { uid: app.uid, gid: app.gid })

  t.test('IPv4 virtual IP on no interface', async (t) => {
    const res = await curl('http://10.96.0.10:80/')
    t.equal(res.code, 0, `curl: ${res.stderr}`)
    t.same(JSON.parse(res.stdout), { address: '10.96.0.10', port: 80, family: 4 })
  })

  t.test('IPv6 virtual IP with ip6tables', async (t) => {
    const res = await curl('http://[fd96::10]:80/')
    t.equal(res.code, 0, `curl: ${res.stderr}`)
    t.same(JSON.parse(res.stdout), { address: 'fd96::10', port: 80, family: 6 })
  })

  t.test('a connection that was not redirected reports the listener itself', async (t) => {
    // conntrack tracks every connection, NATed or not: without a REDIRECT the "original"
    // destination is the listener's own address. The outbound listener uses this to refuse loops.
    const res = await curl('http://127.0.0.1:15001/')
    t.equal(res.code, 0, `curl: ${res.stderr}`)
    t.same(JSON.parse(res.stdout), { address: '127.0.0.1', port: 15001, family: 4 })
  })

  t.test('an untracked connection has no original destination (ENOENT)', async (t) => {
    // Both directions, or the SYN-ACK would start a (reversed) conntrack entry of its own.
    for (const chain of ['OUTPUT', 'PREROUTING']) {
      for (const dir of ['--dport', '--sport']) {
        await h1.mustExec(['iptables', '-t', 'raw', '-A', chain, '-p', 'tcp', dir, '15002', '-j', 'CT', '--notrack'])
      }
    }
    const untracked = h1.spawn([process.execPath, LISTENER, '15002'])
    await untracked.waitFor(/listening 15002/)
    const res = await curl('http://127.0.0.1:15002/')
    t.equal(res.code, 0, `curl: ${res.stderr}`)
    t.match(JSON.parse(res.stdout), { code: 'HOSTMESH_ERR_ORIGDST_LOOKUP', errno: 'ENOENT', message: /not redirected by iptables/ })
  })

  t.test('another uid is not captured', async (t) => {
    // root's packets to the VIP are not redirected; the test switch drops them, so connect times out.
    const res = await h1.exec(['curl', '-sS', '--connect-timeout', '1', '-m', '2', 'http://10.96.0.10:80/'])
    t.not(res.code, 0)
    t.notMatch(res.stdout, /address/)
  })
})
