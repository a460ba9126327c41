// Every kind round-trips: a fully written document parses to the expected typed value
// (defaults filled in, durations in milliseconds), and serializing that value back to YAML
// (durations as "<n>ms") parses to the same value again.
import t, { type Test } from 'tap'
import { stringify } from 'yaml'
import { parsePolicyFiles } from '../../../policy/load.ts'
import { KINDS } from '../../../policy/schema/documents.ts'

const DURATION_KEYS = new Set(['fixedDelay', 'request', 'backendRequest', 'backoff', 'connectTimeout', 'interval', 'baseEjectionTime', 'ttl', 'fillInterval'])
const V = 'apiVersion: hostmesh.io/v1alpha1\n'

function parseOne(text: string): unknown {
  const { docs, problems } = parsePolicyFiles([{ path: 'k.yaml', text }])
  if (problems.length) throw new Error(problems.map((p) => `${p.line}:${p.col} ${p.message}`).join('\n'))
  return docs[0]!.doc
}

function roundTrip(t: Test, text: string, expected: unknown): void {
  const doc = parseOne(text)
  t.same(doc, expected, 'parses to the expected value')
  const again = stringify(doc, (key, value) => (DURATION_KEYS.has(String(key)) && typeof value === 'number' ? `${value}ms` : value))
  t.same(parseOne(again), doc, 'serialized and parsed again: the same value')
}

const CASES: Record<string, [string, unknown]> = {
  Node: [`${V}kind: Node\nmetadata: {name: node-a, labels: {zone: a}}\nspec: {addresses: [10.0.0.1, "fd00::1"], hbonePort: 15018}\n`,
    { apiVersion: 'hostmesh.io/v1alpha1', kind: 'Node', metadata: { name: 'node-a', labels: { zone: 'a' } }, spec: { addresses: ['10.0.0.1', 'fd00::1'], hbonePort: 15018 } }],
  Workload: [`${V}kind: Workload\nmetadata: {name: api, namespace: shop, labels: {app: api}, annotations: {owner: team-a}}\nspec:\n  node: node-a\n  serviceAccount: api-sa\n  match: {address: 10.88.0.5}\n  addresses: [10.88.0.5]\n  ports: [{name: http, port: 8080}, {port: 9090}]\n  mtls: {mode: PERMISSIVE}\n`,
    { apiVersion: 'hostmesh.io/v1alpha1', kind: 'Workload', metadata: { name: 'api', namespace: 'shop', labels: { app: 'api' }, annotations: { owner: 'team-a' } }, spec: { node: 'node-a', serviceAccount: 'api-sa', match: { address: '10.88.0.5' }, addresses: ['10.88.0.5'], ports: [{ name: 'http', port: 8080 }, { port: 9090 }], mtls: { mode: 'PERMISSIVE' } } }],
  Service: [`${V}kind: Service\nmetadata: {name: api, namespace: shop}\nspec:\n  addresses: [10.96.0.1, "fd96::1"]\n  ports: [{name: http, port: 80, protocol: http2, targetPort: http}, {name: grpc, port: 81, protocol: grpc, targetPort: 9090}]\n  selector: {app: api}\n`,
    { apiVersion: 'hostmesh.io/v1alpha1', kind: 'Service', metadata: { name: 'api', namespace: 'shop', labels: {} }, spec: { addresses: ['10.96.0.1', 'fd96::1'], ports: [{ name: 'http', port: 80, protocol: 'http2', targetPort: 'http' }, { name: 'grpc', port: 81, protocol: 'grpc', targetPort: 9090 }], selector: { app: 'api' } } }],
  HTTPRoute: [`${V}kind: HTTPRoute
metadata: {name: api, namespace: shop}
spec:
  parentRefs: [{group: "", kind: Service, name: api, namespace: shop, port: 80}]
  rules:
    - name: all
      matches:
        - path: {type: RegularExpression, value: "/v[0-9]+/.*"}
          headers: [{type: Exact, name: X-Env, value: prod}, {type: RegularExpression, name: x-id, value: "[a-f0-9]{8}"}]
          queryParams: [{type: Exact, name: debug, value: "1"}]
          method: POST
      filters:
        - {type: RequestHeaderModifier, requestHeaderModifier: {set: [{name: x-a, value: "1"}], add: [{name: x-b, value: "2"}], remove: [x-c]}}
        - {type: ResponseHeaderModifier, responseHeaderModifier: {set: [{name: x-d, value: "3"}]}}
        - {type: URLRewrite, urlRewrite: {hostname: api.internal, path: {type: ReplacePrefixMatch, replacePrefixMatch: /v2}}}
        - {type: RequestMirror, requestMirror: {backendRef: {name: api-shadow, port: 80}, percent: 5}}
        - {type: Fault, fault: {delay: {fixedDelay: 1s500ms, percent: 10}, abort: {httpStatus: 503, percent: 1}}}
      backendRefs: [{name: api-v1, port: 80, weight: 90}, {name: api-v2, namespace: shop, port: 80, weight: 10}]
      timeouts: {request: 10s, backendRequest: 2s}
      retry: {attempts: 3, codes: [502, 503], backoff: 100ms}
    - name: moved
      matches: [{path: {type: PathPrefix, value: /old}}]
      filters:
        - {type: RequestRedirect, requestRedirect: {scheme: https, hostname: api.example.org, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, port: 8443, statusCode: 301}}
`, { apiVersion: 'hostmesh.io/v1alpha1', kind: 'HTTPRoute', metadata: { name: 'api', namespace: 'shop', labels: {} }, spec: {
    parentRefs: [{ group: '', kind: 'Service', name: 'api', namespace: 'shop', port: 80 }],
    rules: [{
      name: 'all',
      matches: [{ path: { type: 'RegularExpression', value: '/v[0-9]+/.*' }, headers: [{ type: 'Exact', name: 'x-env', value: 'prod' }, { type: 'RegularExpression', name: 'x-id', value: '[a-f0-9]{8}' }], queryParams: [{ type: 'Exact', name: 'debug', value: '1' }], method: 'POST' }],
      filters: [
        { type: 'RequestHeaderModifier', requestHeaderModifier: { set: [{ name: 'x-a', value: '1' }], add: [{ name: 'x-b', value: '2' }], remove: ['x-c'] } },
        { type: 'ResponseHeaderModifier', responseHeaderModifier: { set: [{ name: 'x-d', value: '3' }] } },
        { type: 'URLRewrite', urlRewrite: { hostname: 'api.internal', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/v2' } } },
        { type: 'RequestMirror', requestMirror: { backendRef: { kind: 'Service', name: 'api-shadow', port: 80 }, percent: 5 } },
        { type: 'Fault', fault: { delay: { fixedDelay: 1500, percent: 10 }, abort: { httpStatus: 503, percent: 1 } } },
      ],
      backendRefs: [{ kind: 'Service', name: 'api-v1', port: 80, weight: 90 }, { kind: 'Service', name: 'api-v2', namespace: 'shop', port: 80, weight: 10 }],
      timeouts: { request: 10000, backendRequest: 2000 },
      retry: { attempts: 3, codes: [502, 503], backoff: 100, grpcStatuses: ['UNAVAILABLE'], allowNonIdempotent: false },
    }, {
      name: 'moved',
      matches: [{ path: { type: 'PathPrefix', value: '/old' } }],
      filters: [{ type: 'RequestRedirect', requestRedirect: { scheme: 'https', hostname: 'api.example.org', path: { type: 'ReplacePrefixMatch', replacePrefixMatch: '/new' }, port: 8443, statusCode: 301 } }],
      backendRefs: [],
    }],
  } }],
  TCPRoute: [`${V}kind: TCPRoute\nmetadata: {name: db}\nspec:\n  parentRefs: [{name: db, port: 5432}]\n  rules: [{name: split, backendRefs: [{name: db-a, port: 5432, weight: 3}, {name: db-b, port: 5432}]}]\n`,
    { apiVersion: 'hostmesh.io/v1alpha1', kind: 'TCPRoute', metadata: { name: 'db', namespace: 'default', labels: {} }, spec: { parentRefs: [{ kind: 'Service', name: 'db', port: 5432 }], rules: [{ name: 'split', backendRefs: [{ kind: 'Service', name: 'db-a', port: 5432, weight: 3 }, { kind: 'Service', name: 'db-b', port: 5432, weight: 1 }] }] } }],
  DestinationPolicy: [`${V}kind: DestinationPolicy\nmetadata: {name: api, namespace: shop}\nspec:\n  targetRefs: [{group: "", kind: Service, name: api}]\n  loadBalancer: {type: ROUND_ROBIN}\n  connectionPool: {maxConnections: 10, maxPendingRequests: 5, maxRequests: 20, connectTimeout: 250ms}\n  outlierDetection: {consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, interval: 5s, baseEjectionTime: 1m, maxEjectionPercent: 50}\n  retryBudget: {percent: 10, minRetriesPerSecond: 5, ttl: 20s}\n  rateLimit: {maxTokens: 100, tokensPerFill: 10, fillInterval: 1s}\n`,
    { apiVersion: 'hostmesh.io/v1alpha1', kind: 'DestinationPolicy', metadata: { name: 'api', namespace: 'shop', labels: {} }, spec: { targetRefs: [{ group: '', kind: 'Service', name: 'api' }], loadBalancer: { type: 'ROUND_ROBIN' }, connectionPool: { maxConnections: 10, maxPendingRequests: 5, maxRequests: 20, connectTimeout: 250 }, outlierDetection: { consecutive5xxErrors: 3, consecutiveGatewayErrors: 2, interval: 5000, baseEjectionTime: 60000, maxEjectionPercent: 50 }, retryBudget: { percent: 10, minRetriesPerSecond: 5, ttl: 20000 }, rateLimit: { maxTokens: 100, tokensPerFill: 10, fillInterval: 1000 } } }],
  AuthorizationPolicy: [`${V}kind: AuthorizationPolicy\nmetadata: {name: api, namespace: shop}\nspec:\n  selector: {matchLabels: {app: api}}\n  action: DENY\n  rules:\n    - from: [{source: {principals: ["spiffe://cluster.local/ns/shop/sa/*"], notPrincipals: ["*/sa/admin"], namespaces: [shop], notNamespaces: [dev]}}]\n      to: [{operation: {ports: [8080, "9090"], notPorts: [22], methods: [GET], notMethods: [DELETE], paths: ["/api/*"], notPaths: ["*.php"]}}]\n    - {}\n`,
    { apiVersion: 'hostmesh.io/v1alpha1', kind: 'AuthorizationPolicy', metadata: { name: 'api', namespace: 'shop', labels: {} }, spec: { selector: { matchLabels: { app: 'api' } }, action: 'DENY', rules: [{ from: [{ source: { principals: ['spiffe://cluster.local/ns/shop/sa/*'], notPrincipals: ['*/sa/admin'], namespaces: ['shop'], notNamespaces: ['dev'] } }], to: [{ operation: { ports: [8080, 9090], notPorts: [22], methods: ['GET'], notMethods: ['DELETE'], paths: ['/api/*'], notPaths: ['*.php'] } }] }, {}] } }],
}

t.same(Object.keys(CASES).sort(), [...KINDS].sort(), 'every kind has a round-trip case')
for (const [kind, [text, expected]] of Object.entries(CASES)) t.test(kind, async (t) => roundTrip(t, text, expected))

t.test('defaults follow Linkerd and Envoy', async (t) => {
  const doc = parseOne(`${V}kind: DestinationPolicy\nmetadata: {name: d}\nspec: {targetRefs: [{name: s}]}\n`) as { spec: Record<string, unknown> }
  t.same(doc.spec.retryBudget, { percent: 20, minRetriesPerSecond: 10, ttl: 10000 }, 'retry budget: 20% plus 10 retries/s')
  t.same(doc.spec.outlierDetection, { consecutive5xxErrors: 5, consecutiveGatewayErrors: 0, interval: 10000, baseEjectionTime: 30000, maxEjectionPercent: 10 }, 'eject after 5 errors, 30 s base, at most 10%')
  t.same(doc.spec.loadBalancer, { type: 'P2C_EWMA' })
  t.same(doc.spec.connectionPool, { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, connectTimeout: 10000 })
  const w = parseOne(`${V}kind: Workload\nmetadata: {name: w}\nspec: {node: n, match: {uid: 1}}\n`) as { metadata: unknown; spec: unknown }
  t.same(w.metadata, { name: 'w', namespace: 'default', labels: {} })
  t.same(w.spec, { node: 'n', serviceAccount: 'default', match: { uid: 1 }, ports: [], mtls: { mode: 'STRICT' } })
  const r = parseOne(`${V}kind: HTTPRoute\nmetadata: {name: r}\nspec: {parentRefs: [{name: s}], rules: [{retry: {}}]}\n`) as { spec: { rules: unknown[] } }
  t.same(r.spec.rules[0], { matches: [{}], filters: [], backendRefs: [], retry: { attempts: 2, codes: [500, 502, 503, 504], backoff: 25, grpcStatuses: ['UNAVAILABLE'], allowNonIdempotent: false } }, 'retry: GEP-1731 codes and attempts, Envoy backoff, idempotent methods only')
  const redirect = parseOne(`${V}kind: HTTPRoute\nmetadata: {name: r}\nspec: {parentRefs: [{name: s}], rules: [{filters: [{type: RequestRedirect, requestRedirect: {}}]}]}\n`) as { spec: { rules: { filters: unknown[] }[] } }
  t.same(redirect.spec.rules[0]!.filters, [{ type: 'RequestRedirect', requestRedirect: { statusCode: 302 } }], 'a redirect is 302 unless told (Gateway API)')
})
