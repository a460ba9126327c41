// Test helper: HTTPRoute YAML → the compiled, precedence-sorted rules of Service ns/web:80,
// through the real policy pipeline, so the matchers are tested on what the daemon would get.
import { formatProblem } from '../../../policy/errors.ts'
import { hashFiles } from '../../../policy/load.ts'
import { buildSnapshot } from '../../../policy/pipeline.ts'
import type { CompiledHTTPRule } from '../../../policy/snapshot.ts'

const svc = (name: string, ip: string): string =>
  `apiVersion: hostmesh.io/v1alpha1\nkind: Service\nmetadata: {name: ${name}, namespace: ns}\nspec: {addresses: [${ip}], ports: [{name: http, port: 80, protocol: http, targetPort: 8080}], selector: {app: w}}\n`

const BASE = [
  'apiVersion: hostmesh.io/v1alpha1\nkind: Node\nmetadata: {name: n1}\nspec: {addresses: [10.0.0.1]}\n',
  'apiVersion: hostmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: w, namespace: ns, labels: {app: w}}\nspec: {node: n1, match: {uid: 1000}, ports: [{name: http, port: 8080}]}\n',
  svc('web', '10.96.0.1'), svc('v1', '10.96.0.11'), svc('v2', '10.96.0.12'), svc('v3', '10.96.0.13'),
].join('---\n')

/** `routes` is one or more HTTPRoute documents (separated by ---) in namespace ns. */
export function compileRoutes(routes: string): readonly CompiledHTTPRule[] {
  const files = [{ path: 'base.yaml', text: BASE, sha256: 'a' }, { path: 'routes.yaml', text: routes, sha256: 'b' }]
  const r = buildSnapshot({ dir: 'd', missing: false, files, hash: hashFiles(files), problems: [] }, { generation: 1, trustDomain: 'cluster.local' })
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join('\n'))
  const route = r.snapshot.servicePorts.get('ns/web:80')?.route
  if (route?.kind !== 'http') throw new Error('ns/web:80 has no HTTPRoute')
  return route.rules
}

/** An HTTPRoute named `name` on ns/web with the given `rules:` body (YAML, indented 4). */
export function httpRoute(name: string, rules: string): string {
  return `apiVersion: hostmesh.io/v1alpha1\nkind: HTTPRoute\nmetadata: {name: ${name}, namespace: ns}\nspec:\n  parentRefs: [{name: web}]\n  rules:\n${rules}`
}

/** The backend a rule sends to, "v1".."v3"; "-" for none (a redirect, or a 500). */
export function backendOf(rule: CompiledHTTPRule | undefined): string | undefined {
  if (!rule) return undefined
  const first = rule.backends.backends[0]
  return first ? first.servicePort.replace(/^ns\/(.*):80$/, '$1') : '-'
}
