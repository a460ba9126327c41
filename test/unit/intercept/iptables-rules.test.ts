// captureRules is a pure function: same input, same text; each family gets only its own
// addresses; containers (address match) are captured in PREROUTING, host processes in OUTPUT.
import t from 'tap'
import { captureRules, describeRules, outboundRedirects, type CaptureInput } from '../../../daemon/intercept/iptables-rules.ts'
import type { WorkloadInfo } from '../../../policy/snapshot.ts'

const w = (key: string, match: WorkloadInfo['match'], addresses: string[], ports: number[]): WorkloadInfo => ({
  key, name: key.split('/')[1]!, namespace: key.split('/')[0]!, node: 'n', serviceAccount: 'sa', identity: `spiffe://td/ns/x/sa/${key}`,
  labels: {}, match, addresses, ports: ports.map((port) => ({ port })), mtlsMode: 'STRICT',
})

const input: CaptureInput = {
  daemonUid: 990, inboundPlaintextPort: 15006, hbonePort: 15008,
  localWorkloads: [
    { workload: w('ns/container', { address: '172.17.0.5' }, ['172.17.0.5'], [8080]), outboundPort: 15002 },
    { workload: w('ns/proc', { uid: 1001 }, ['10.0.0.1', 'fd00::1'], [80, 443]), outboundPort: 15001 },
    { workload: w('ns/v6c', { address: 'fd00::99' }, ['fd00::99'], []), outboundPort: 15003 },
  ],
}

t.test('IPv4 rules', async (t) => {
  t.equal(captureRules(input, 4), [
    '*filter',
    ':HOSTMESH_GUARD - [0:0]',
    '-A HOSTMESH_GUARD -p tcp --syn -m conntrack --ctstate DNAT --ctreplsrc 127.0.0.1 --ctreplsrcport 15001 -m owner ! --uid-owner 1001 -m comment --comment "ns/proc" -j REJECT --reject-with tcp-reset',
    'COMMIT',
    '*nat',
    ':HOSTMESH_OUTPUT - [0:0]',
    ':HOSTMESH_PREROUTING - [0:0]',
    '-A HOSTMESH_OUTPUT -m owner --uid-owner 990 -j RETURN',
    '-A HOSTMESH_OUTPUT -d 127.0.0.0/8 -j RETURN',
    '-A HOSTMESH_OUTPUT -p tcp -m owner --uid-owner 1001 -m comment --comment "ns/proc" -j REDIRECT --to-ports 15001',
    '-A HOSTMESH_PREROUTING -p tcp --dport 15008 -j RETURN',
    '-A HOSTMESH_PREROUTING -p tcp -s 172.17.0.5 -m comment --comment "ns/container" -j REDIRECT --to-ports 15002',
    '-A HOSTMESH_PREROUTING -p tcp -m addrtype --dst-type LOCAL --dport 80 -m comment --comment "ns/proc" -j REDIRECT --to-ports 15006',
    '-A HOSTMESH_PREROUTING -p tcp -m addrtype --dst-type LOCAL --dport 443 -m comment --comment "ns/proc" -j REDIRECT --to-ports 15006',
    '-A HOSTMESH_PREROUTING -p tcp -d 172.17.0.5 --dport 8080 -m comment --comment "ns/container" -j REDIRECT --to-ports 15006',
    'COMMIT',
    '',
  ].join('\n'))
})

t.test('IPv6 rules hold only IPv6 addresses', async (t) => {
  const v6 = captureRules(input, 6)
  t.match(v6, /-A HOSTMESH_OUTPUT -d ::1\/128 -j RETURN/)
  t.match(v6, /-A HOSTMESH_PREROUTING -p tcp -s fd00::99 -m comment --comment "ns\/v6c" -j REDIRECT --to-ports 15003/)
  t.match(v6, /--dst-type LOCAL --dport 443 /, 'a host process: any local address, both families')
  t.notMatch(v6, /172\.17|10\.0\.0\.1|127\.0\.0/)
  t.match(v6, /--uid-owner 1001 .*--to-ports 15001/, 'uid rules are family-independent')
  t.match(v6, /-A HOSTMESH_GUARD -p tcp --syn -m conntrack --ctstate DNAT --ctreplsrc ::1 --ctreplsrcport 15001 -m owner ! --uid-owner 1001 /, 'the guard: REDIRECT from OUTPUT leads to ::1 in IPv6')
  t.equal(v6.match(/-A HOSTMESH_GUARD/g)?.length, 1, 'containers (address match) have no guard: their source address names them')
})

t.test('the same workloads in another order give the same text', async (t) => {
  const reversed = { ...input, localWorkloads: [...input.localWorkloads].reverse() }
  t.equal(captureRules(reversed, 4), captureRules(input, 4))
  t.equal(captureRules(reversed, 6), captureRules(input, 6))
  t.match(describeRules(input), /# IPv4: iptables-restore --noflush\n\*filter[\s\S]*# IPv6: ip6tables-restore --noflush\n\*filter[\s\S]*-t filter -I OUTPUT 1 -p tcp --syn -m conntrack --ctstate DNAT -j HOSTMESH_GUARD\n#   -t nat -A OUTPUT -p tcp -j HOSTMESH_OUTPUT\n#   -t nat -A PREROUTING -p tcp -j HOSTMESH_PREROUTING\n/)
})

t.test('the outbound ports in force, read back from `iptables -S`', async (t) => {
  const listing = [
    '-N HOSTMESH_OUTPUT',
    '-A HOSTMESH_OUTPUT -m owner --uid-owner 990 -j RETURN',
    '-A HOSTMESH_OUTPUT -p tcp -m owner --uid-owner 1001 -m comment --comment ns/proc -j REDIRECT --to-ports 15001',
    '-A HOSTMESH_PREROUTING -s 172.17.0.5/32 -p tcp -m comment --comment "ns/container" -j REDIRECT --to-ports 15002',
    '-A HOSTMESH_PREROUTING -p tcp -m addrtype --dst-type LOCAL -m tcp --dport 80 -m comment --comment ns/proc -j REDIRECT --to-ports 15006',
    '-A HOSTMESH_PREROUTING -p tcp -m tcp --dport 15008 -j RETURN',
    '',
  ].join('\n')
  t.same(outboundRedirects(listing), new Map([['ns/proc', 15001], ['ns/container', 15002]]))
  t.same(outboundRedirects(''), new Map())
})
