// `hostmesh iptables print` and its errors through the real executable (apply and remove run
// in test/e2e/iptables.test.ts, on a namespace host).
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { systemUid } from '../../../daemon/cli/commands/iptables.ts'
import { hostmesh } from '../../helpers/cli.ts'

const EXAMPLES = new URL('../../../policy/examples/', import.meta.url).pathname

function setup(node = 'node-c'): { dir: string; config: string } {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-ipt-'))
  cpSync(EXAMPLES, join(dir, 'policy.d'), { recursive: true })
  const config = join(dir, 'hostmesh.yaml')
  writeFileSync(config, `node: {name: ${node}, addresses: [10.77.0.13]}\npolicyDir: ${join(dir, 'policy.d')}\n`)
  return { dir, config }
}

t.test('print shows both families for this node\'s local workloads', async (t) => {
  const { config } = setup()
  const r = hostmesh(['iptables', 'print', '--config', config, '--daemon-uid', '990'])
  t.equal(r.status, 0, r.stderr)
  t.match(r.stdout, /^# IPv4: iptables-restore --noflush\n\*filter\n:HOSTMESH_GUARD - \[0:0\]\n[^]*\*nat\n:HOSTMESH_OUTPUT - \[0:0\]/)
  t.match(r.stdout, /-A HOSTMESH_OUTPUT -m owner --uid-owner 990 -j RETURN/)
  t.match(r.stdout, /--uid-owner 2003 -m comment --comment "shop\/fraud" -j REDIRECT --to-ports 15001/)
  t.match(r.stdout, /# IPv6: ip6tables-restore --noflush/)
  const other = hostmesh(['iptables', 'print', '--config', setup('node-a').config, '--daemon-uid', '990'])
  t.match(other.stdout, /--comment "shop\/checkout"/)
  t.notMatch(other.stdout, /shop\/fraud/, 'only this node\'s workloads')
})

t.test('errors: bad action, bad uid, invalid policy, invalid config', async (t) => {
  const { dir, config } = setup()
  for (const [args, msg] of [[['iptables'], /expected an action: print, apply or remove/], [['iptables', 'flush'], /unknown action "flush"/], [['iptables', 'print', '--daemon-uid', 'root'], /--daemon-uid "root" is not a uid/]] as const) {
    const r = hostmesh([...args])
    t.equal(r.status, 2, args.join(' '))
    t.match(r.stderr, msg)
  }
  const routes = join(dir, 'policy.d', '30-routes.yaml')
  writeFileSync(routes, readFileSync(routes, 'utf8').replace('weight: 90', 'weight: -90'))
  const bad = hostmesh(['iptables', 'apply', '--config', config])
  t.equal(bad.status, 1)
  t.match(bad.stderr, new RegExp(`${routes}:\\d+:\\d+: `))
  t.match(bad.stderr, /is invalid; no rules applied/)
  const cfg = hostmesh(['iptables', 'print', '--config', join(dir, 'missing.yaml')])
  t.equal(cfg.status, 78)
})

t.test('systemUid reads /etc/passwd', async (t) => {
  const passwd = join(mkdtempSync(join(tmpdir(), 'hostmesh-pw-')), 'passwd')
  writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\nhostmesh:x:991:991::/var/lib/hostmesh:/usr/sbin/nologin\n')
  t.equal(systemUid('hostmesh', passwd), 991)
  t.equal(systemUid('root', passwd), 0)
  t.equal(systemUid('nobody-here', passwd), undefined)
  t.equal(systemUid('hostmesh', join(passwd, 'missing')), undefined)
})
