// Istio's AuthorizationPolicy semantics on the example policy, compiled for node-c.
import t from 'tap'
import { authorize } from '../../../daemon/authz/evaluate.ts'
import { loadPolicy } from '../../../policy/pipeline.ts'

const EXAMPLES = new URL('../../../policy/examples/', import.meta.url).pathname
const ID = (sa: string, ns = 'shop') => `spiffe://cluster.local/ns/${ns}/sa/${sa}`

t.test('ALLOW and DENY, principals, namespaces, ports, HTTP fields on TCP', async (t) => {
  const res = await loadPolicy(EXAMPLES, { generation: 1, trustDomain: 'cluster.local', localNode: 'node-c' })
  if (!res.ok) throw new Error(res.problems[0]!.message)
  const payments = res.snapshot.authorization.get('shop/payments-v2')
  const fraud = res.snapshot.authorization.get('shop/fraud')
  // payments: ALLOW checkout on 8080 (HTTP GET/POST /pay*, /health) and 7000 (TCP).
  t.match(authorize(payments, { identity: ID('checkout'), port: 7000 }), { allowed: true, policy: 'AuthorizationPolicy/shop/payments-from-checkout' })
  t.match(authorize(payments, { identity: ID('checkout'), port: 8080, method: 'POST', path: '/pay/1' }), { allowed: true })
  t.match(authorize(payments, { identity: ID('checkout'), port: 8080 }), { allowed: false, reason: /no ALLOW policy matched/ }, 'HTTP-only fields never match TCP in an ALLOW rule')
  t.match(authorize(payments, { identity: ID('checkout'), port: 8080, method: 'DELETE', path: '/pay/1' }), { allowed: false })
  t.match(authorize(payments, { identity: ID('fraud'), port: 7000 }), { allowed: false }, 'another principal')
  t.match(authorize(payments, { port: 7000 }), { allowed: false }, 'plaintext has no principal')
  // fraud: DENY from outside the shop namespace; no ALLOW policy.
  t.match(authorize(fraud, { identity: ID('checkout'), port: 9090 }), { allowed: true })
  t.match(authorize(fraud, { identity: ID('scanner', 'tools'), port: 9090 }), { allowed: false, policy: 'AuthorizationPolicy/shop/fraud-deny-foreign', reason: /denied by/ })
  t.match(authorize(fraud, { port: 9090 }), { allowed: false }, 'plaintext is "not in shop" too: DENY fails closed')
  t.match(authorize(undefined, { port: 1 }), { allowed: true }, 'no policy at all: allowed')
})

t.test('hosts and notHosts (case-insensitive, with or without the port); the CONNECT stage of an HTTP port', async (t) => {
  const { buildSnapshot } = await import('../../../policy/pipeline.ts')
  const { hashFiles } = await import('../../../policy/load.ts')
  const V = 'apiVersion: hostmesh.io/v1alpha1\n'
  const text = [
    `${V}kind: Node\nmetadata: {name: n1}\nspec: {addresses: [10.0.0.1]}\n`,
    `${V}kind: Workload\nmetadata: {name: api, namespace: ns, labels: {app: api}}\nspec: {node: n1, serviceAccount: api, match: {uid: 1000}, ports: [{port: 8080}]}\n`,
    `${V}kind: AuthorizationPolicy\nmetadata: {name: allow-hosts, namespace: ns}\nspec:\n  selector: {matchLabels: {app: api}}\n  rules:\n    - to: [{operation: {hosts: ["api.example.com", "*.internal"], methods: [GET]}}]\n`,
    `${V}kind: AuthorizationPolicy\nmetadata: {name: deny-admin-host, namespace: ns}\nspec:\n  selector: {matchLabels: {app: api}}\n  action: DENY\n  rules:\n    - to: [{operation: {notHosts: ["*.internal", "api.example.com"], paths: ["/admin*"]}}]\n`,
  ].join('---\n')
  const files = [{ path: 'p.yaml', text, sha256: 'x' }]
  const r = buildSnapshot({ dir: 'd', missing: false, files, hash: hashFiles(files), problems: [] }, { generation: 1, trustDomain: 'cluster.local', localNode: 'n1' })
  if (!r.ok) throw new Error(r.problems.map((p) => p.message).join('\n'))
  const authz = r.snapshot.authorization.get('ns/api')
  const req = (host: string | undefined, path = '/'): { identity: string; port: number; method: string; path: string; host?: string } => ({ identity: ID('web', 'ns'), port: 8080, method: 'GET', path, ...(host !== undefined ? { host } : {}) })
  t.match(authorize(authz, req('api.example.com')), { allowed: true })
  t.match(authorize(authz, req('API.Example.COM:8080')), { allowed: true }, 'case-insensitive, and a pattern without a port matches host:port')
  t.match(authorize(authz, req('db.internal')), { allowed: true }, 'suffix pattern')
  t.match(authorize(authz, req('evil.com')), { allowed: false }, 'a host no rule lists')
  t.match(authorize(authz, req(undefined)), { allowed: false }, 'no host: hosts cannot match')
  t.match(authorize(authz, req('[fd00::1]:8080')), { allowed: false }, 'an IPv6 authority is not mistaken for host:port of a listed name')
  t.match(authorize(authz, req('api.example.com', '/admin/x')), { allowed: true }, 'the DENY needs a host outside its notHosts')
  // A DENY on notHosts cannot fire for a host in the ALLOW list; the ALLOW refuses the others.
  t.match(authorize(authz, { identity: ID('web', 'ns'), port: 8080, stage: 'connect' }), { allowed: true }, 'CONNECT: some request could be allowed')
  t.match(authorize(authz, { identity: ID('web', 'ns'), port: 8080 }), { allowed: false }, 'the same as TCP: HTTP fields never match an ALLOW rule')
})

t.test('the CONNECT stage: a DENY rule without HTTP fields refuses it; one with them cannot', async (t) => {
  const res = await loadPolicy(EXAMPLES, { generation: 1, trustDomain: 'cluster.local', localNode: 'node-c' })
  if (!res.ok) throw new Error(res.problems[0]!.message)
  const payments = res.snapshot.authorization.get('shop/payments-v2')
  const fraud = res.snapshot.authorization.get('shop/fraud')
  t.match(authorize(payments, { identity: ID('checkout'), port: 8080, stage: 'connect' }), { allowed: true }, 'checkout may send some request to 8080')
  t.match(authorize(payments, { identity: ID('fraud'), port: 8080, stage: 'connect' }), { allowed: false }, 'fraud may send none')
  t.match(authorize(fraud, { identity: ID('scanner', 'tools'), port: 9090, stage: 'connect' }), { allowed: false, reason: /denied by/ }, 'a DENY with no HTTP fields refuses the connection')
})
