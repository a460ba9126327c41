import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { hostmesh } from '../../helpers/cli.ts'

const EXAMPLES = new URL('../../../policy/examples', import.meta.url).pathname

t.test('a valid dir: exit 0 and a one-line summary', async (t) => {
  const res = hostmesh(['validate', EXAMPLES], { HOSTMESH_CONFIG: '' })
  t.equal(res.status, 0)
  t.match(res.stdout, new RegExp(`^${EXAMPLES}: OK: 5 file\\(s\\), 3 Node, 4 Workload, 6 Service, 2 HTTPRoute, 1 TCPRoute, 1 DestinationPolicy, 2 AuthorizationPolicy; hash [0-9a-f]{12}\\n$`))
  t.equal(res.stderr, '')
})

t.test('an invalid dir: exit 1, every problem as file:line:col', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-validate-'))
  cpSync(EXAMPLES, dir, { recursive: true })
  writeFileSync(join(dir, '30-routes.yaml'), readFileSync(join(dir, '30-routes.yaml'), 'utf8').replace('name: payments-v1, port: 80', 'name: payments-v9, port: 80').replace('backoff: 50ms', 'backoff: soon'))
  writeFileSync(join(dir, '99-broken.yaml'), 'kind: [\n')
  const res = hostmesh(['validate', dir])
  t.equal(res.status, 1)
  const lines = res.stderr.trim().split('\n')
  t.equal(lines.length, 4)
  t.match(lines[0], new RegExp(`^${dir}/30-routes\\.yaml:\\d+:\\d+: spec\\.rules\\[1\\]\\.backendRefs\\[0\\]\\.name: unknown Service "shop/payments-v9"`))
  t.match(lines[1], new RegExp(`^${dir}/30-routes\\.yaml:\\d+:\\d+: spec\\.rules\\[0\\]\\.retry\\.backoff: "soon" is not valid`))
  t.match(lines[2], new RegExp(`^${dir}/99-broken\\.yaml:2:1: YAML syntax`))
  t.equal(lines[3], `${dir}: 3 problems; the daemon would keep its last good policy`)
  t.equal(res.stdout, '')

  const json = JSON.parse(hostmesh(['validate', dir, '--json']).stdout) as { ok: boolean; problems: Array<{ file: string; line: number; col: number; key: string; message: string }>; files: unknown[] }
  t.equal(json.ok, false)
  t.equal(json.problems.length, 3)
  t.match(json.problems[0], { file: `${dir}/30-routes.yaml`, line: Number, col: Number, key: 'spec.rules[1].backendRefs[0].name' })
  t.equal(json.files.length, 6)
})

t.test('--json for a valid dir', async (t) => {
  const res = hostmesh(['validate', EXAMPLES, '--json'])
  t.equal(res.status, 0)
  const json = JSON.parse(res.stdout) as Record<string, unknown>
  t.match(json, { ok: true, dir: EXAMPLES, hash: /^[0-9a-f]{64}$/, counts: { Node: 3 }, problems: [] })
})

t.test('a missing dir is an error; the default dir comes from the node config', async (t) => {
  const res = hostmesh(['validate', '/nonexistent/policy.d'])
  t.equal(res.status, 1)
  t.match(res.stderr, '/nonexistent/policy.d:1:1: the policy dir does not exist')
  const root = mkdtempSync(join(tmpdir(), 'hostmesh-validate-cfg-'))
  writeFileSync(join(root, 'hostmesh.yaml'), `node: {name: node-a, addresses: [10.77.0.11]}\npolicyDir: ${EXAMPLES}\n`)
  const viaConfig = hostmesh(['validate', '--config', join(root, 'hostmesh.yaml')])
  t.equal(viaConfig.status, 0)
  t.match(viaConfig.stdout, `${EXAMPLES}: OK`)
  writeFileSync(join(root, 'bad.yaml'), 'node: {name: node-a}\n')
  const badConfig = hostmesh(['validate', EXAMPLES], { HOSTMESH_CONFIG: join(root, 'bad.yaml') })
  t.equal(badConfig.status, 78, 'an invalid node config is exit 78, as for run')
})

t.test('per-node compiles catch what only one host would hit', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-validate-ports-'))
  cpSync(EXAMPLES, dir, { recursive: true })
  const root = mkdtempSync(join(tmpdir(), 'hostmesh-validate-cfg-'))
  writeFileSync(join(root, 'hostmesh.yaml'), `node: {name: node-a, addresses: [10.77.0.11]}\nports: {outboundBase: 65535, admin: 15000}\n`)
  const res = hostmesh(['validate', dir, '--config', join(root, 'hostmesh.yaml')])
  t.equal(res.status, 1)
  t.match(res.stderr, /10-workloads\.yaml:\d+:\d+: metadata\.name: no outbound port left for workload "shop\/[a-z0-9-]+": ports 65535-65535 are all taken/)
})
