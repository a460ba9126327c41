// Stage 3 of a reload: cross-references and rules that span documents. Every problem is
// collected and located at the value that is wrong; nothing stops at the first one.
import type { SourceProblem } from './errors.ts'
import { nameOf, problemAt, where, type PolicyIndex } from './index-docs.ts'
import { addressKey } from './ip.ts'
import type { LoadedDoc } from './load.ts'
import { checkRegex } from './regex.ts'
import { isHttpProtocol, resolveServiceRef, servicePortKey, serviceKeyOf, workloadAddresses } from './resolve.ts'

export function validateIndex(index: PolicyIndex): SourceProblem[] {
  const problems: SourceProblem[] = []
  checkNodes(index, problems)
  checkWorkloads(index, problems)
  checkServices(index, problems)
  checkRoutes(index, problems)
  checkDestinationPolicies(index, problems)
  return problems
}

/** Remembers the first document that claimed a value, to report any later claim against it. */
function claims(problems: SourceProblem[], verb = 'used'): (value: string, d: LoadedDoc, path: readonly PropertyKey[], what: string) => void {
  const seen = new Map<string, { d: LoadedDoc; path: readonly PropertyKey[] }>()
  return (value, d, path, what) => {
    const first = seen.get(value)
    if (first) problems.push(problemAt(d, path, `${what} is already ${verb} by ${first.d.kind} "${nameOf(first.d)}" at ${where(first.d, first.path)}`))
    else seen.set(value, { d, path })
  }
}

function checkNodes(index: PolicyIndex, problems: SourceProblem[]): void {
  const claim = claims(problems)
  for (const n of index.nodes.values()) {
    n.doc.spec.addresses.forEach((a, i) => claim(addressKey(a, 0), n, ['spec', 'addresses', i], `address ${a}`))
  }
}

function checkWorkloads(index: PolicyIndex, problems: SourceProblem[]): void {
  const nodeNames = [...index.nodes.keys()]
  const uidClaim = claims(problems)
  const sourceClaim = claims(problems)
  const portClaim = claims(problems)
  for (const w of index.workloads.values()) {
    const spec = w.doc.spec
    if (!index.nodes.has(spec.node)) {
      problems.push(problemAt(w, ['spec', 'node'], `unknown Node "${spec.node}"; expected one of: ${nodeNames.length ? nodeNames.join(', ') : '(no Nodes defined)'}`))
    }
    // Two workloads matched the same way would share one capture rule: ambiguous identity.
    if (spec.match.uid !== undefined) uidClaim(`${spec.node}#${spec.match.uid}`, w, ['spec', 'match', 'uid'], `uid ${spec.match.uid} on node "${spec.node}"`)
    if (spec.match.address !== undefined) sourceClaim(addressKey(spec.match.address, 0), w, ['spec', 'match', 'address'], `source address ${spec.match.address}`)
    const names = new Set<string>()
    spec.ports.forEach((p, i) => {
      if (p.name) {
        if (names.has(p.name)) problems.push(problemAt(w, ['spec', 'ports', i, 'name'], `duplicate port name "${p.name}"`))
        names.add(p.name)
      }
      for (const a of workloadAddresses(index, w)) portClaim(addressKey(a, p.port), w, ['spec', 'ports', i, 'port'], `${a} port ${p.port}`)
    })
  }
}

function checkServices(index: PolicyIndex, problems: SourceProblem[]): void {
  const vipClaim = claims(problems)
  for (const s of index.services.values()) {
    const spec = s.doc.spec
    const names = new Set<string>()
    spec.ports.forEach((p, i) => {
      if (p.name) {
        if (names.has(p.name)) problems.push(problemAt(s, ['spec', 'ports', i, 'name'], `duplicate port name "${p.name}"`))
        names.add(p.name)
      }
      if (spec.ports.findIndex((q) => q.port === p.port) !== i) problems.push(problemAt(s, ['spec', 'ports', i, 'port'], `duplicate port ${p.port}`))
      spec.addresses.forEach((a, j) => vipClaim(addressKey(a, p.port), s, ['spec', 'addresses', j], `${a}:${p.port}`))
      if (spec.endpoints && typeof p.targetPort === 'string') {
        problems.push(problemAt(s, ['spec', 'ports', i, 'targetPort'], `a named targetPort ("${p.targetPort}") needs selected workloads; with explicit endpoints give a port number`))
      }
    })
  }
}

function checkRoutes(index: PolicyIndex, problems: SourceProblem[]): void {
  // Which route owns each service port: HTTPRoutes merge, anything else on the same port conflicts.
  const owner = new Map<string, { kind: 'HTTPRoute' | 'TCPRoute'; d: LoadedDoc; path: readonly PropertyKey[] }>()
  const attach = (portKey: string, kind: 'HTTPRoute' | 'TCPRoute', d: LoadedDoc, path: readonly PropertyKey[]): void => {
    const first = owner.get(portKey)
    if (first && (first.kind === 'TCPRoute' || kind === 'TCPRoute')) {
      problems.push(problemAt(d, path, `Service port ${portKey} already has ${first.kind} "${nameOf(first.d)}" (${where(first.d, first.path)}); a TCPRoute must be the only route of its port`))
    } else if (!first) {
      owner.set(portKey, { kind, d, path })
    }
  }

  for (const r of index.tcpRoutes.values()) {
    const ns = r.doc.metadata.namespace
    r.doc.spec.parentRefs.forEach((ref, i) => {
      const res = resolveServiceRef(index, ns, ref)
      if (!res.ok) return problems.push(problemAt(r, ['spec', 'parentRefs', i, res.field], res.message))
      for (const p of res.ports) attach(servicePortKey(serviceKeyOf(res.service), p.port), 'TCPRoute', r, ['spec', 'parentRefs', i])
    })
    r.doc.spec.rules.forEach((rule, i) => checkBackends(index, r, ['spec', 'rules', i, 'backendRefs'], rule.backendRefs, problems))
  }

  for (const r of index.httpRoutes.values()) {
    const ns = r.doc.metadata.namespace
    r.doc.spec.parentRefs.forEach((ref, i) => {
      const res = resolveServiceRef(index, ns, ref)
      if (!res.ok) return problems.push(problemAt(r, ['spec', 'parentRefs', i, res.field], res.message))
      const httpPorts = res.ports.filter((p) => isHttpProtocol(p.protocol))
      if (httpPorts.length === 0) {
        const what = ref.port === undefined ? 'has no port with protocol http, http2 or grpc' : `port ${ref.port} has protocol ${res.ports[0]!.protocol}`
        return problems.push(problemAt(r, ['spec', 'parentRefs', i, ref.port === undefined ? 'name' : 'port'], `Service "${serviceKeyOf(res.service)}" ${what}; an HTTPRoute needs http, http2 or grpc (use a TCPRoute for tcp)`))
      }
      for (const p of httpPorts) attach(servicePortKey(serviceKeyOf(res.service), p.port), 'HTTPRoute', r, ['spec', 'parentRefs', i])
    })
    r.doc.spec.rules.forEach((rule, i) => {
      const base = ['spec', 'rules', i] as const
      if (rule.backendRefs.length > 0) checkBackends(index, r, [...base, 'backendRefs'], rule.backendRefs, problems)
      const t = rule.timeouts
      if (t?.request !== undefined && t.backendRequest !== undefined && t.backendRequest > t.request) {
        problems.push(problemAt(r, [...base, 'timeouts', 'backendRequest'], `backendRequest timeout (${t.backendRequest} ms) is longer than the request timeout (${t.request} ms); expected at most the request timeout`))
      }
      rule.matches.forEach((m, j) => {
        const mp = [...base, 'matches', j]
        if (m.path?.type === 'RegularExpression') regex(r, [...mp, 'path', 'value'], m.path.value, problems)
        m.headers?.forEach((h, k) => { if (h.type === 'RegularExpression') regex(r, [...mp, 'headers', k, 'value'], h.value, problems) })
        m.queryParams?.forEach((q, k) => { if (q.type === 'RegularExpression') regex(r, [...mp, 'queryParams', k, 'value'], q.value, problems) })
      })
      rule.filters.forEach((f, j) => {
        if (f.type !== 'RequestMirror') return
        const res = resolveServiceRef(index, ns, f.requestMirror.backendRef)
        if (!res.ok) problems.push(problemAt(r, [...base, 'filters', j, 'requestMirror', 'backendRef', res.field], res.message))
      })
      const kinds = rule.filters.map((f) => f.type)
      kinds.forEach((k, j) => {
        if (kinds.indexOf(k) !== j) problems.push(problemAt(r, [...base, 'filters', j, 'type'], `filter ${k} appears twice in one rule; expected each filter type at most once`))
      })
      checkRedirectAndRewrite(r, base, rule, problems)
    })
  }
}

type HTTPRule = LoadedDoc<'HTTPRoute'>['doc']['spec']['rules'][number]

/**
 * Gateway API's rules (CEL on HTTPRouteRule) for the filters that change where a request goes:
 * a redirect answers the request, so its rule has no backendRefs and no URLRewrite; and
 * ReplacePrefixMatch needs exactly one match, a PathPrefix, to know which prefix to replace.
 */
function checkRedirectAndRewrite(r: LoadedDoc<'HTTPRoute'>, base: readonly PropertyKey[], rule: HTTPRule, problems: SourceProblem[]): void {
  const redirect = rule.filters.findIndex((f) => f.type === 'RequestRedirect')
  const rewrite = rule.filters.findIndex((f) => f.type === 'URLRewrite')
  if (redirect >= 0 && rewrite >= 0) {
    const later = Math.max(redirect, rewrite)
    const other = later === redirect ? `URLRewrite (filters[${rewrite}])` : `RequestRedirect (filters[${redirect}])`
    problems.push(problemAt(r, [...base, 'filters', later, 'type'], `filter ${later === redirect ? 'RequestRedirect' : 'URLRewrite'} cannot be combined with ${other} in one rule (Gateway API); expected one or the other`))
  }
  if (redirect >= 0 && rule.backendRefs.length > 0) {
    problems.push(problemAt(r, [...base, 'backendRefs'], `a rule with a RequestRedirect filter (filters[${redirect}]) answers every request itself, so its backendRefs would never be used (Gateway API forbids both); expected no backendRefs`))
  }
  rule.filters.forEach((f, j) => {
    const field = f.type === 'URLRewrite' ? 'urlRewrite' : f.type === 'RequestRedirect' ? 'requestRedirect' : undefined
    const path = f.type === 'URLRewrite' ? f.urlRewrite.path : f.type === 'RequestRedirect' ? f.requestRedirect.path : undefined
    if (!field || path?.type !== 'ReplacePrefixMatch') return
    // No matches, or a match without a path, is PathPrefix "/" (Gateway API's default).
    const matches: HTTPRule['matches'] = rule.matches.length > 0 ? rule.matches : [{}]
    const type = matches[0]?.path?.type ?? 'PathPrefix'
    if (matches.length === 1 && type === 'PathPrefix') return
    const got = matches.length === 1 ? `its match is ${type === 'Exact' ? 'an' : 'a'} ${type} path` : `it has ${matches.length} matches`
    problems.push(problemAt(r, [...base, 'filters', j, field, 'path', 'type'], `ReplacePrefixMatch replaces the prefix the rule matched, so the rule needs exactly one match, of type PathPrefix (Gateway API), but ${got}; expected one PathPrefix match, or ReplaceFullPath`))
  })
}

function checkBackends(index: PolicyIndex, r: LoadedDoc<'HTTPRoute'> | LoadedDoc<'TCPRoute'>, path: readonly PropertyKey[], refs: readonly { name: string; namespace?: string | undefined; port: number; weight: number }[], problems: SourceProblem[]): void {
  refs.forEach((ref, i) => {
    const res = resolveServiceRef(index, r.doc.metadata.namespace, ref)
    if (!res.ok) problems.push(problemAt(r, [...path, i, res.field], res.message))
  })
  if (refs.length > 0 && refs.every((b) => b.weight === 0)) {
    problems.push(problemAt(r, path, 'every backendRef has weight 0, so no request could be sent anywhere; expected at least one weight above 0'))
  }
}

function regex(d: LoadedDoc, path: readonly PropertyKey[], source: string, problems: SourceProblem[]): void {
  const res = checkRegex(source)
  if (!res.ok) problems.push(problemAt(d, path, res.message))
}

function checkDestinationPolicies(index: PolicyIndex, problems: SourceProblem[]): void {
  const claim = claims(problems, 'targeted')
  for (const p of index.destinationPolicies.values()) {
    const ns = p.doc.metadata.namespace
    p.doc.spec.targetRefs.forEach((ref, i) => {
      const res = resolveServiceRef(index, ns, { name: ref.name })
      if (!res.ok) return problems.push(problemAt(p, ['spec', 'targetRefs', i, 'name'], res.message))
      claim(serviceKeyOf(res.service), p, ['spec', 'targetRefs', i, 'name'], `Service "${serviceKeyOf(res.service)}"`)
    })
  }
}
