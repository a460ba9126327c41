// The L7 path on three real hosts: checkout (uid 2001, node-a) calls payments over HTTP at
// the VIP 10.96.0.20:80; the example HTTPRoute splits /pay 90/10 between payments-v1 (node-b)
// and payments-v2 (node-c), whose hostmesh authorizes each request.
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { testNet, type HostProcess, type TestHost } from '../../scripts/netns/hosts.ts'
import { meshNodeConfigs } from '../../scripts/netns/mesh-nodes.ts'
import { CLI } from '../helpers/cli.ts'
import { e2eSkip } from '../helpers/e2e.ts'

const EXAMPLES = new URL('../../policy/examples/', import.meta.url).pathname
const SERVER = new URL('../../scripts/netns/workloads/http-server.ts', import.meta.url).pathname
const NODE = process.execPath
const EXTRA = `apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: payments-rest, namespace: shop}
spec:
  parentRefs: [{name: payments, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: payments-v1, port: 80}]
`

t.test('L7 through the mesh', { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: ['node-a', 'node-b', 'node-c'] })
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-l7-'))
  cpSync(EXAMPLES, join(dir, 'policy.d'), { recursive: true })
  writeFileSync(join(dir, 'policy.d', '60-e2e.yaml'), EXTRA)
  const configs = await meshNodeConfigs(net.hosts, dir, { policyDir: join(dir, 'policy.d'), extra: 'drainSeconds: 1\n' })
  const daemons = new Map<string, HostProcess>()
  for (const h of net.hosts) daemons.set(h.name, h.spawn([NODE, CLI, 'run', '--config', configs.get(h.name)!]))
  const admin = (h: TestHost, path: string) => h.exec(['curl', '-sS', '-m', '2', `http://127.0.0.1:15000${path}`])
  for (const h of net.hosts) {
    for (let i = 0; i < 100 && (await admin(h, '/ready')).stdout.indexOf('"ready": true') < 0; i++) await new Promise((r) => setTimeout(r, 100))
    t.match((await admin(h, '/ready')).stdout, /"ready": true/, `${h.name} ready`)
  }
  const [a, b, c] = [net.host('node-a'), net.host('node-b'), net.host('node-c')]
  const v1 = b.spawn([NODE, SERVER, 'payments-v1', '8080'], { uid: 2002, gid: 2002 })
  const v2 = c.spawn([NODE, SERVER, 'payments-v2', '8080'], { uid: 2002, gid: 2002 })
  await v1.waitFor(/listening/)
  await v2.waitFor(/listening/)
  const curl = (args: string[]) => a.exec(['curl', '-sS', '-m', '10', ...args], { uid: 2001, gid: 2001, timeoutMs: 20_000 })

  await t.test('a GET reaches a payments version, with the route\'s header and the verified peer', async (t) => {
    const r = await curl(['-i', 'http://10.96.0.20/pay'])
    t.comment(r.stdout + r.stderr)
    t.match(r.stdout, /^HTTP\/1\.1 200/)
    t.match(r.stdout, /"x-routed-by":"hostmesh"/)
    t.match(r.stdout, /"x-forwarded-client-cert":"By=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/payments;URI=spiffe:\/\/cluster\.local\/ns\/shop\/sa\/checkout"/)
  })
  t.comment(daemons.get('node-a')!.output.slice(-3000))
  t.comment(daemons.get('node-b')!.output.slice(-3000))
})
