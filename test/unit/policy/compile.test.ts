import { cpSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { matchesPattern, patternSet, principalOf } from '../../../policy/patterns.ts'
import { addressKey, canonicalIp } from '../../../policy/ip.ts'
import { loadPolicy } from '../../../policy/pipeline.ts'
import type { Snapshot } from '../../../policy/snapshot.ts'

const EXAMPLES = new URL('../../../policy/examples/', import.meta.url).pathname
const RESERVED = [15000, 15006, 15008]

async function examples(localNode?: string, extra?: Record<string, string>, previous?: Snapshot): Promise<Snapshot> {
  let dir = EXAMPLES
  if (extra) {
    dir = mkdtempSync(join(tmpdir(), 'hostmesh-compile-'))
    cpSync(EXAMPLES, dir, { recursive: true })
    for (const [name, text] of Object.entries(extra)) writeFileSync(join(dir, name), text)
  }
  const r = await loadPolicy(dir, { generation: 7, trustDomain: 'cluster.local', reservedPorts: RESERVED, ...(localNode ? { localNode } : {}), ...(previous ? { previous } : {}) })
  if (!r.ok) throw new Error(r.problems.map((p) => `${p.file}:${p.line}:${p.col}: ${p.message}`).join('\n'))
  return r.snapshot
}

t.test('the examples compile; generation, hash and files are recorded', async (t) => {
  const s = await examples('node-c')
  t.equal(s.generation, 7)
  t.match(s.hash, /^[0-9a-f]{64}$/)
  t.same(s.files.map((f) => f.path.split('/').pop()), ['00-nodes.yaml', '10-workloads.yaml', '20-services.yaml', '30-routes.yaml', '40-policies.yaml'])
  t.same(s.counts, { Node: 3, Workload: 4, Service: 6, HTTPRoute: 2, TCPRoute: 1, DestinationPolicy: 1, AuthorizationPolicy: 2 })
  t.equal(s.localNode, 'node-c')
  t.equal((await examples('node-c')).hash, s.hash, 'the hash depends only on the files')
})

t.test('the snapshot is frozen all the way down', async (t) => {
  const s = await examples('node-c')
  t.ok(Object.isFrozen(s))
  const sp = s.servicePorts.get('shop/payments:80')!
  t.ok(Object.isFrozen(sp))
  t.ok(Object.isFrozen(sp.endpoints[0]!.node))
  t.ok(sp.route?.kind === 'http' && Object.isFrozen(sp.route.rules[0]!.match.headers))
  t.throws(() => { (sp as { port: number }).port = 1 }, TypeError)
})

t.test('(destination ip, port) → service port, for IPv4 and IPv6 in any spelling', async (t) => {
  const s = await examples()
  t.equal(s.byDestination.get(addressKey('10.96.0.20', 80))?.key, 'shop/payments:80')
  t.equal(s.byDestination.get(addressKey('10.96.0.20', 7000))?.key, 'shop/payments:7000')
  t.equal(s.byDestination.get(addressKey('fd96:0:0::20', 80))?.key, 'shop/payments:80')
  t.equal(s.byDestination.get(addressKey('::ffff:10.96.0.30', 80))?.key, 'shop/fraud:80')
  t.equal(s.byDestination.get(addressKey('10.96.0.20', 81)), undefined)
  t.equal(canonicalIp('FD96:0000::0020'), 'fd96::20')
  t.equal(canonicalIp('10.0.0.1'), '10.0.0.1')
})

t.test('endpoints carry the workload, its expected identity and its node HBONE address', async (t) => {
  const s = await examples()
  const eps = s.servicePorts.get('shop/payments:80')!.endpoints
  t.same(eps.map((e) => [e.workload, e.address, e.port, e.identity, e.node?.name, e.node?.hbonePort]), [
    ['shop/payments-v1', '10.77.0.12', 8080, 'spiffe://cluster.local/ns/shop/sa/payments', 'node-b', 15008],
    ['shop/payments-v2', '10.77.0.13', 8080, 'spiffe://cluster.local/ns/shop/sa/payments', 'node-c', 15008],
  ], 'named targetPort "http" resolves per workload')
  t.same(s.servicePorts.get('shop/payments:7000')!.endpoints.map((e) => e.port), [7000, 7000], 'no targetPort: the service port')
  const ext = s.servicePorts.get('shop/card-network:443')!
  t.same(ext.endpoints, [{ address: '10.77.0.13', port: 9443 }], 'explicit endpoint: no identity, no tunnel')
  t.equal(s.services.get('shop/card-network')!.external, true)
  t.equal(s.workloadByAddress.get(addressKey('10.77.0.13', 9090))?.key, 'shop/fraud', 'HBONE :authority → workload')
})

t.test('routes: TCPRoute weights, and HTTPRoute rules in Gateway API precedence', async (t) => {
  const s = await examples()
  const ledger = s.servicePorts.get('shop/payments:7000')!.route
  t.same(ledger, { kind: 'tcp', route: 'TCPRoute/shop/ledger', backends: { backends: [{ servicePort: 'shop/payments-v1:7000', weight: 90 }, { servicePort: 'shop/payments-v2:7000', weight: 10 }], cumulative: [90, 100], total: 100 } })
  const http = s.servicePorts.get('shop/payments:80')!.route
  t.equal(http?.kind, 'http')
  if (http?.kind !== 'http') return
  t.same(http.rules.map((r) => [r.rule, r.match.path.value, r.match.headers.length]), [[0, '/pay', 1], [1, '/pay', 0]], 'equal prefixes: more header matches first')
  t.same(http.rules[1]!.timeouts, { requestMs: 5000, backendRequestMs: 2000 })
  t.same(http.rules[1]!.requestHeaders, { set: [{ name: 'x-routed-by', value: 'hostmesh' }], add: [], remove: [] })
  const fraud = s.servicePorts.get('shop/fraud:80')!.route
  t.same(fraud?.kind === 'http' && fraud.rules[0]!.retry, { attempts: 3, codes: new Set([502, 503, 504]), grpcStatuses: new Set([14]), backoffMs: 50, allowNonIdempotent: false })
  t.equal(s.servicePorts.get('shop/checkout:80')!.route, undefined, 'no route: the port\'s own endpoints')
})

t.test('precedence: exact, longest prefix, regex, method, headers, query, then name order', async (t) => {
  const route = (name: string, rules: string): string => `apiVersion: hostmesh.io/v1alpha1\nkind: HTTPRoute\nmetadata: {name: ${name}, namespace: shop}\nspec:\n  parentRefs: [{name: checkout}]\n  rules:\n${rules}`
  const s = await examples(undefined, {
    '50-precedence.yaml': [
      route('b', "    - matches: [{path: {value: /a}}, {path: {value: /a/b/}}, {path: {type: Exact, value: /a}}]\n      backendRefs: [{name: checkout, port: 80}]\n"),
      route('a', "    - matches: [{path: {value: /a}, method: GET}, {path: {value: /a}, queryParams: [{name: q, value: '1'}]}, {path: {type: RegularExpression, value: '/a.*'}}, {path: {value: /a}}]\n      backendRefs: [{name: checkout, port: 80}]\n"),
    ].join('---\n'),
  })
  const http = s.servicePorts.get('shop/checkout:80')!.route
  if (http?.kind !== 'http') return t.fail('expected HTTP rules')
  t.same(http.rules.map((r) => `${r.route.split('/').pop()} ${r.match.path.type} ${r.match.path.value}${r.match.method ? ` ${r.match.method}` : ''}${r.match.queryParams.length ? ' ?q' : ''}`), [
    'b Exact /a',
    'b PathPrefix /a/b',
    'a PathPrefix /a GET',
    'a PathPrefix /a ?q',
    'a PathPrefix /a',
    'b PathPrefix /a',
    'a RegularExpression /a.*',
  ], 'a regular expression comes after every prefix')
  const re = http.rules[6]!.match.path.regex!
  t.ok(re.test('/abc') && !re.test('x/abc'), 'regex is anchored to the whole path')
})

t.test('filters compile to what the data plane applies: rewrite, redirect, header modifiers', async (t) => {
  const s = await examples(undefined, {
    '50-filters.yaml': `apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: f, namespace: shop}
spec:
  parentRefs: [{name: checkout}]
  rules:
    - matches: [{path: {value: /old/}}]
      filters:
        - {type: RequestRedirect, requestRedirect: {scheme: https, hostname: shop.example, port: 8443, statusCode: 301, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}
    - matches: [{path: {value: /api}}]
      filters:
        - {type: URLRewrite, urlRewrite: {hostname: api.internal, path: {type: ReplaceFullPath, replaceFullPath: /v2}}}
        - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: X-A, value: '1'}, {name: x-a, value: '2'}], add: [{name: X-B, value: '3'}], remove: [X-C]}}
      backendRefs: [{name: checkout, port: 80}]
`,
  })
  const http = s.servicePorts.get('shop/checkout:80')!.route
  if (http?.kind !== 'http') return t.fail('expected HTTP rules')
  const old = http.rules.find((r) => r.route === 'HTTPRoute/shop/f' && r.rule === 0)
  const api = http.rules.find((r) => r.route === 'HTTPRoute/shop/f' && r.rule === 1)
  t.same(old!.match.path, { type: 'PathPrefix', value: '/old' }, 'the trailing "/" of a prefix is dropped at compile time')
  t.same(old!.redirect, { scheme: 'https', hostname: 'shop.example', path: { type: 'ReplacePrefixMatch', value: '/new' }, port: 8443, statusCode: 301 })
  t.same(old!.backends, { backends: [], cumulative: [], total: 0 })
  t.equal(old!.urlRewrite, undefined)
  t.same(api!.urlRewrite, { hostname: 'api.internal', path: { type: 'ReplaceFullPath', value: '/v2' } })
  t.equal(api!.redirect, undefined)
  t.same(api!.requestHeaders, { set: [{ name: 'x-a', value: '1' }], add: [{ name: 'x-b', value: '3' }], remove: ['x-c'] }, 'names lowercase; of two sets of one header the first counts')
})

t.test('outbound ports: local workloads only, reserved ports skipped, survivors keep theirs', async (t) => {
  const c = await examples('node-c')
  t.same(c.localWorkloads.map((l) => [l.workload.key, l.outboundPort]), [['shop/fraud', 15001], ['shop/payments-v2', 15002]])
  t.equal(c.outboundByPort.get(15002)?.key, 'shop/payments-v2')
  t.same((await examples('node-a')).localWorkloads.map((l) => l.workload.key), ['shop/checkout'])
  t.same((await examples()).localWorkloads, [], 'no local node: no listeners')

  const more = Array.from({ length: 6 }, (_, i) => `apiVersion: hostmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: a${i}, namespace: shop}\nspec: {node: node-c, match: {uid: ${3000 + i}}}\n`).join('---\n')
  const grown = await examples('node-c', { '50-more.yaml': more }, c)
  const ports = new Map(grown.localWorkloads.map((l) => [l.workload.key, l.outboundPort]))
  t.equal(ports.get('shop/fraud'), 15001, 'kept')
  t.equal(ports.get('shop/payments-v2'), 15002, 'kept')
  t.same([...ports.values()].sort(), [15001, 15002, 15003, 15004, 15005, 15007, 15009, 15010], 'new ones fill upwards, skipping 15006 and 15008')
  const fresh = await examples('node-c', { '50-more.yaml': more })
  t.equal(new Map(fresh.localWorkloads.map((l) => [l.workload.key, l.outboundPort])).get('shop/a0'), 15001, 'without a previous snapshot: name order')

  // After a restart: the ports the live rules and stored sockets have. A gone workload's port
  // stays free for this generation; one below the base is not taken over.
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-restored-'))
  cpSync(EXAMPLES, dir, { recursive: true })
  writeFileSync(join(dir, '50-more.yaml'), more)
  const restoredPorts = new Map([['shop/a3', 15001], ['shop/gone', 15002], ['shop/fraud', 14000]])
  const r = await loadPolicy(dir, { generation: 1, trustDomain: 'cluster.local', reservedPorts: RESERVED, localNode: 'node-c', restoredPorts })
  const restored = new Map(r.ok ? r.snapshot.localWorkloads.map((l) => [l.workload.key, l.outboundPort]) : [])
  t.equal(restored.get('shop/a3'), 15001, 'a restored port is kept')
  t.notOk([...restored.values()].includes(15002), 'the port of a workload that is gone is not reused yet')
  t.equal(restored.get('shop/a0'), 15003, 'the others fill the free ports in name order')
  t.notOk([...restored.values()].includes(14000), 'a port below outboundBase is not restored')
})

t.test('authorization per workload, DENY and ALLOW, with compiled patterns', async (t) => {
  const s = await examples()
  const pay = s.authorization.get('shop/payments-v1')!
  t.same(pay.deny, [])
  t.same(pay.allow.map((p) => p.key), ['AuthorizationPolicy/shop/payments-from-checkout'])
  const rule = pay.allow[0]!.rules[0]!
  t.ok(matchesPattern(rule.from![0]!.principals!, principalOf('spiffe://cluster.local/ns/shop/sa/checkout')))
  t.notOk(matchesPattern(rule.from![0]!.principals!, 'cluster.local/ns/shop/sa/fraud'))
  t.same([...rule.to![0]!.ports!], [8080])
  t.same([...pay.allow[0]!.rules[1]!.to![0]!.ports!], [7000], 'a string port becomes a number')
  t.same(s.authorization.get('shop/fraud')!.deny.map((p) => p.key), ['AuthorizationPolicy/shop/fraud-deny-foreign'])
  t.same(s.authorization.get('shop/checkout'), { deny: [], allow: [] })
  const p = patternSet(['spiffe://td/ns/a/sa/x', 'td/ns/b/*', '*/sa/admin'], principalOf)
  t.ok(matchesPattern(p, 'td/ns/a/sa/x'))
  t.ok(matchesPattern(p, 'td/ns/b/sa/anything'))
  t.ok(matchesPattern(p, 'other/ns/c/sa/admin'))
  t.notOk(matchesPattern(p, 'td/ns/c/sa/x'))
  t.ok(matchesPattern(patternSet(['*']), 'anything'))
})

t.test('destination settings: the policy where one targets the service, defaults elsewhere', async (t) => {
  const s = await examples()
  const fraud = s.services.get('shop/fraud')!.destination
  t.same(fraud, {
    source: 'DestinationPolicy/shop/fraud', loadBalancer: 'LEAST_REQUEST',
    connectionPool: { maxConnections: 100, maxPendingRequests: 50, maxRequests: 200, connectTimeoutMs: 1000 },
    outlierDetection: { consecutive5xxErrors: 3, consecutiveGatewayErrors: 3, intervalMs: 5000, baseEjectionTimeMs: 30000, maxEjectionPercent: 50 },
    retryBudget: { percent: 20, minRetriesPerSecond: 10, ttlMs: 10000 },
    rateLimit: { maxTokens: 100, tokensPerFill: 50, fillIntervalMs: 1000 },
  })
  const d = s.services.get('shop/payments')!.destination
  t.equal(d.source, 'default')
  t.equal(d.loadBalancer, 'P2C_EWMA')
  t.same(d.retryBudget, { percent: 20, minRetriesPerSecond: 10, ttlMs: 10000 })
  t.same(d.outlierDetection, { consecutive5xxErrors: 5, consecutiveGatewayErrors: 0, intervalMs: 10000, baseEjectionTimeMs: 30000, maxEjectionPercent: 10 })
  t.equal(d.rateLimit, undefined)
})
