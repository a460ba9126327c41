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
