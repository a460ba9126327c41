// The reload says which resilience fields the data path does not apply yet (#13), so the gap
// between what a policy asks and what hostmesh does is never silent.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { formatProblem } from '../../../policy/errors.ts'
import { hashFiles } from '../../../policy/load.ts'
import { buildSnapshot } from '../../../policy/pipeline.ts'
import { notEnforced } from '../../../daemon/run/policy-reload.ts'

const EXAMPLES = new URL('../../../policy/examples/', import.meta.url).pathname

t.test('the example policy: the retry and maxPendingRequests are named (timeouts, faults, rate limits, maxRequests and maxConnections are enforced)', async (t) => {
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).sort().map((f, i) => ({ path: join(EXAMPLES, f), text: readFileSync(join(EXAMPLES, f), 'utf8'), sha256: String(i) }))
  const r = buildSnapshot({ dir: EXAMPLES, missing: false, files, hash: hashFiles(files), problems: [] }, { generation: 1, trustDomain: 'cluster.local' })
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join('\n'))
  t.same(notEnforced(r.snapshot), [
    'DestinationPolicy/shop/fraud.connectionPool.maxPendingRequests',
    'HTTPRoute/shop/fraud#0.retry',
  ])
})

t.test('a RequestMirror filter is enforced (stages/mirror.ts), so it is not named', async (t) => {
  const V = 'apiVersion: hostmesh.io/v1alpha1\n'
  const text = [
    `${V}kind: Service\nmetadata: {name: api, namespace: t}\nspec: {addresses: [10.96.0.1], ports: [{port: 80, protocol: http}], endpoints: [{address: 10.0.0.1, port: 8080}]}\n`,
    `${V}kind: Service\nmetadata: {name: api-shadow, namespace: t}\nspec: {addresses: [10.96.0.2], ports: [{port: 80, protocol: http}], endpoints: [{address: 10.0.0.2, port: 8080}]}\n`,
    `${V}kind: HTTPRoute\nmetadata: {name: api, namespace: t}\nspec:\n  parentRefs: [{name: api}]\n  rules:\n    - filters: [{type: RequestMirror, requestMirror: {backendRef: {name: api-shadow, port: 80}, percent: 5}}]\n      backendRefs: [{name: api, port: 80}]\n`,
  ].join('---\n')
  const files = [{ path: '/p/mirror.yaml', text, sha256: '0' }]
  const r = buildSnapshot({ dir: '/p', missing: false, files, hash: hashFiles(files), problems: [] }, { generation: 1, trustDomain: 'cluster.local' })
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join('\n'))
  const rule = r.snapshot.servicePorts.get('t/api:80')?.route
  t.match(rule, { kind: 'http', rules: [{ mirror: { servicePort: 't/api-shadow:80', percent: 5 } }] }, 'the rule compiles with its mirror')
  t.same(notEnforced(r.snapshot), [])
})
