// Stage 4 of a reload: a valid PolicyIndex → one Snapshot with every lookup the data plane
// needs precomputed. Runs only after validation found nothing, so references resolve; it
// still never throws on policy content.
import { workloadId } from '../certs/spiffe.ts'
import type { SourceProblem } from './errors.ts'
import { deepFreeze } from './freeze.ts'
import { problemAt, type PolicyIndex } from './index-docs.ts'
import { addressKey } from './ip.ts'
import type { LoadedDoc } from './load.ts'
import { patternSet, principalOf } from './patterns.ts'
import { checkRegex } from './regex.ts'
import { isHttpProtocol, labelsMatch, resolveServiceRef, selectedWorkloads, serviceKeyOf, servicePortKey, workloadAddresses } from './resolve.ts'
import { DestinationSpecSchema } from './schema/destination-policy.ts'
import { GRPC_STATUS } from './schema/http-route.ts'
import type { Kind } from './schema/documents.ts'
import type {
  CompiledAuthzPolicy, CompiledAuthzRule, CompiledHTTPRule, CompiledMatch, DestinationSettings, Endpoint, HeaderModifier, HTTPPathModifier,
  NodeInfo, PortRoute, Protocol, RateBucket, WorkloadRateLimit, ServiceInfo, ServicePortInfo, Snapshot, SnapshotFile, WeightedBackends, WorkloadAuthz, WorkloadInfo,
} from './snapshot.ts'

export interface CompileOptions {
  readonly generation: number
  readonly hash: string
  readonly files: readonly SnapshotFile[]
  readonly trustDomain: string
  /** Compile this node's view (local workloads, outbound ports); absent for offline validation. */
  readonly localNode?: string
  readonly outboundBase?: number
  /** Ports the outbound listeners must not take (admin, inbound plaintext, HBONE). */
  readonly reservedPorts?: readonly number[]
  /** Keeps each surviving local workload on the outbound port it had, across reloads. */
  readonly previous?: Snapshot
  /**
   * Workload key → the outbound port it had before a restart (the fd store's sockets, whose
   * iptables rules are still in place). Used for the first snapshot, when there is no `previous`.
   */
  readonly restoredPorts?: ReadonlyMap<string, number>
}

type Mutable<T> = { -readonly [K in keyof T]: T[K] }

// Compiled parts of unchanged documents are reused across reloads. The parse cache hands back
// the same LoadedDoc objects for files whose bytes did not change, so object identity means
// "unchanged"; each memo below holds a pure function of its key document and of the inputs
// stored next to it. Reused parts are already frozen, so the snapshot's deep freeze skips
// them: a reload pays for what changed, plus the lookup maps.
const nodeMemo = new WeakMap<LoadedDoc<'Node'>, NodeInfo>()
const workloadMemo = new WeakMap<LoadedDoc<'Workload'>, { trustDomain: string; node: NodeInfo | undefined; info: WorkloadInfo }>()
const endpointsMemo = new WeakMap<LoadedDoc<'Service'>, Map<number, { deps: readonly object[]; endpoints: Endpoint[] }>>()
const httpRulesMemo = new WeakMap<LoadedDoc<'HTTPRoute'>, CompiledHTTPRule[]>()
const tcpRouteMemo = new WeakMap<LoadedDoc<'TCPRoute'>, PortRoute>()
const authzMemo = new WeakMap<LoadedDoc<'AuthorizationPolicy'>, CompiledAuthzPolicy>()
const destinationMemo = new WeakMap<LoadedDoc<'DestinationPolicy'>, DestinationSettings>()

function memo<K extends object, V>(map: WeakMap<K, V>, key: K, make: () => V): V {
  let v = map.get(key)
  if (v === undefined) map.set(key, (v = make()))
  return v
}

export function compile(index: PolicyIndex, opts: CompileOptions): { snapshot?: Snapshot; problems: SourceProblem[] } {
  const problems: SourceProblem[] = []
  const nodes = new Map<string, NodeInfo>()
  for (const [name, n] of index.nodes) nodes.set(name, memo(nodeMemo, n, () => ({ name, addresses: n.doc.spec.addresses, hbonePort: n.doc.spec.hbonePort })))

  const workloads = new Map<string, WorkloadInfo>()
  const workloadByAddress = new Map<string, WorkloadInfo>()
  for (const [key, w] of index.workloads) {
    const node = nodes.get(w.doc.spec.node)
    let m = workloadMemo.get(w)
    if (!m || m.trustDomain !== opts.trustDomain || m.node !== node) {
      m = { trustDomain: opts.trustDomain, node, info: workloadInfo(index, key, w, opts.trustDomain) }
      workloadMemo.set(w, m)
    }
    const info = m.info
    workloads.set(key, info)
    for (const a of info.addresses) for (const p of info.ports) workloadByAddress.set(addressKey(a, p.port), info)
  }

  const services = new Map<string, ServiceInfo>()
  const servicePorts = new Map<string, Mutable<ServicePortInfo>>()
  const byDestination = new Map<string, ServicePortInfo>()
  const destinations = destinationSettings(index)
  for (const [key, s] of index.services) {
    const portKeys: string[] = []
    for (const p of s.doc.spec.ports) {
      const pk = servicePortKey(key, p.port)
      portKeys.push(pk)
      const sp: Mutable<ServicePortInfo> = { key: pk, service: key, port: p.port, protocol: p.protocol, endpoints: endpointsOf(index, s, p, workloads, nodes) }
      if (p.name) sp.name = p.name
      servicePorts.set(pk, sp)
      for (const a of s.doc.spec.addresses) byDestination.set(addressKey(a, p.port), sp)
    }
    services.set(key, {
      key, name: s.doc.metadata.name, namespace: s.doc.metadata.namespace, addresses: s.doc.spec.addresses,
      external: s.doc.spec.endpoints !== undefined, ports: portKeys, destination: destinations.get(key) ?? destinations.get('')!,
    })
  }
  attachRoutes(index, servicePorts)
  const workloadPortProtocol = portProtocols(servicePorts.values(), workloads)
  const workloadRateLimits = rateLimits(servicePorts.values(), services, workloads)

  const authorization = new Map<string, WorkloadAuthz>()
  const policies = [...index.authorizationPolicies.values()].sort((a, b) => (a.key < b.key ? -1 : 1)).map((d) => ({ d, compiled: memo(authzMemo, d, () => compileAuthz(d.key, d)) }))
  for (const [key, w] of workloads) {
    const apply = policies.filter(({ d }) => d.doc.metadata.namespace === w.namespace && (!d.doc.spec.selector || labelsMatch(d.doc.spec.selector.matchLabels, w.labels)))
    authorization.set(key, {
      deny: apply.filter((p) => p.compiled.action === 'DENY').map((p) => p.compiled),
      allow: apply.filter((p) => p.compiled.action === 'ALLOW').map((p) => p.compiled),
    })
  }

  const localWorkloads = assignOutboundPorts(index, workloads, opts, problems)
  if (problems.length > 0) return { problems }

  const counts: Record<Kind, number> = {
    Node: index.nodes.size, Workload: index.workloads.size, Service: index.services.size,
    HTTPRoute: index.httpRoutes.size, TCPRoute: index.tcpRoutes.size,
    DestinationPolicy: index.destinationPolicies.size, AuthorizationPolicy: index.authorizationPolicies.size,
  }
  const snapshot: Snapshot = {
    generation: opts.generation,
    hash: opts.hash,
    createdAt: new Date().toISOString(),
    trustDomain: opts.trustDomain,
    ...(opts.localNode !== undefined ? { localNode: opts.localNode } : {}),
    files: opts.files,
    counts,
    nodes, workloads, services, servicePorts, byDestination, workloadByAddress, workloadPortProtocol, workloadRateLimits,
    localWorkloads,
    outboundByPort: new Map(localWorkloads.map((l) => [l.outboundPort, l.workload])),
    authorization,
    defaultDestination: defaultDestination(),
  }
  return { snapshot: deepFreeze(snapshot), problems }
}

/**
 * How the destination host reads each workload port: as the Services that select it declare.
 * Services that disagree: `tcp` wins (a TCP client must never meet an HTTP parser), and
 * `http` wins over `http2`/`grpc` (it accepts both HTTP versions).
 */
function portProtocols(ports: Iterable<ServicePortInfo>, workloads: ReadonlyMap<string, WorkloadInfo>): Map<string, Protocol> {
  const out = new Map<string, Protocol>()
  const rank: Record<Protocol, number> = { tcp: 3, http: 2, http2: 1, grpc: 1 }
  for (const sp of ports) {
    for (const k of workloadPortKeys(sp, workloads)) {
      const had = out.get(k)
      if (had === undefined || rank[sp.protocol] > rank[had]) out.set(k, sp.protocol)
    }
  }
  return out
}

/** addressKey of every workload address and port that a service port's mesh endpoints stand for. */
function* workloadPortKeys(sp: ServicePortInfo, workloads: ReadonlyMap<string, WorkloadInfo>): Generator<string> {
  for (const ep of sp.endpoints) {
    const w = ep.workload ? workloads.get(ep.workload) : undefined
    if (w) for (const a of w.addresses) yield addressKey(a, ep.port)
  }
}

/**
 * The rate limits a destination host enforces, by workload address and port: those of the
 * DestinationPolicies of the Services that select it. Two Services that limit the same
 * workload port: the first by service key applies.
 */
function rateLimits(ports: Iterable<ServicePortInfo>, services: ReadonlyMap<string, ServiceInfo>, workloads: ReadonlyMap<string, WorkloadInfo>): Map<string, WorkloadRateLimit> {
  const out = new Map<string, WorkloadRateLimit>()
  for (const sp of [...ports].sort((a, b) => (a.key < b.key ? -1 : 1))) {
    const svc = services.get(sp.service)
    const limit = svc?.destination.rateLimit
    if (!svc || !limit) continue
    for (const k of workloadPortKeys(sp, workloads)) {
      if (!out.has(k)) out.set(k, { policy: svc.destination.source, service: `${svc.name}.${svc.namespace}`, limit })
    }
  }
  return out
}

function workloadInfo(index: PolicyIndex, key: string, w: LoadedDoc<'Workload'>, trustDomain: string): WorkloadInfo {
  const { metadata, spec } = w.doc
  return {
    key, name: metadata.name, namespace: metadata.namespace, node: spec.node, serviceAccount: spec.serviceAccount,
    identity: workloadId(trustDomain, metadata.namespace, spec.serviceAccount),
    labels: metadata.labels,
    match: spec.match.uid !== undefined ? { uid: spec.match.uid } : { address: spec.match.address! },
    addresses: workloadAddresses(index, w),
    ports: spec.ports.map((p) => (p.name ? { name: p.name, port: p.port } : { port: p.port })),
    mtlsMode: spec.mtls.mode,
  }
}

function endpointsOf(index: PolicyIndex, s: LoadedDoc<'Service'>, p: LoadedDoc<'Service'>['doc']['spec']['ports'][number], workloads: ReadonlyMap<string, WorkloadInfo>, nodes: ReadonlyMap<string, NodeInfo>): Endpoint[] {
  // The endpoints depend on the service document and on the selected workloads and their
  // nodes: reuse the last list when all of those are the very same objects.
  const selected = s.doc.spec.endpoints ? [] : selectedWorkloads(index, s).map((w) => workloads.get(`${w.doc.metadata.namespace}/${w.doc.metadata.name}`)!)
  const deps: object[] = [...selected, ...selected.map((w) => nodes.get(w.node) ?? w)]
  let perPort = endpointsMemo.get(s)
  if (!perPort) endpointsMemo.set(s, (perPort = new Map()))
  const prev = perPort.get(p.port)
  if (prev && prev.deps.length === deps.length && prev.deps.every((d, i) => d === deps[i])) return prev.endpoints
  const endpoints = computeEndpoints(s, p, selected, nodes)
  perPort.set(p.port, { deps, endpoints })
  return endpoints
}

function computeEndpoints(s: LoadedDoc<'Service'>, p: LoadedDoc<'Service'>['doc']['spec']['ports'][number], selected: readonly WorkloadInfo[], nodes: ReadonlyMap<string, NodeInfo>): Endpoint[] {
  if (s.doc.spec.endpoints) {
    const target = typeof p.targetPort === 'number' ? p.targetPort : p.port
    return s.doc.spec.endpoints.map((e) => ({ address: e.address, port: e.port ?? target }))
  }
  const out: Endpoint[] = []
  for (const info of selected) {
    // A named targetPort selects only the workloads that have a port of that name (Kubernetes).
    const port = typeof p.targetPort === 'string' ? info.ports.find((wp) => wp.name === p.targetPort)?.port : (p.targetPort ?? p.port)
    const node = nodes.get(info.node)
    if (port === undefined || !node || info.addresses.length === 0) continue
    // The node's NodeInfo itself, shared by all its endpoints.
    out.push({ address: info.addresses[0]!, port, workload: info.key, identity: info.identity, node })
  }
  return out
}

let defaults: DestinationSettings | undefined

/** The settings of a destination no DestinationPolicy names (Linkerd/Envoy defaults). */
export function defaultDestination(): DestinationSettings {
  defaults ??= deepFreeze(settings('default', DestinationSpecSchema.parse({ targetRefs: [{ name: 'default' }] }))) as DestinationSettings
  return defaults
}

function destinationSettings(index: PolicyIndex): Map<string, DestinationSettings> {
  defaults ??= defaultDestination()
  const out = new Map<string, DestinationSettings>([['', defaults]])
  for (const p of index.destinationPolicies.values()) {
    const s = memo(destinationMemo, p, () => settings(p.key, p.doc.spec))
    for (const ref of p.doc.spec.targetRefs) out.set(`${p.doc.metadata.namespace}/${ref.name}`, s)
  }
  return out
}

function settings(source: string, spec: LoadedDoc<'DestinationPolicy'>['doc']['spec']): DestinationSettings {
  const { connectionPool: cp, outlierDetection: od, retryBudget: rb, rateLimit: rl } = spec
  return {
    source,
    loadBalancer: spec.loadBalancer.type,
    connectionPool: { maxConnections: cp.maxConnections, maxPendingRequests: cp.maxPendingRequests, maxRequests: cp.maxRequests, connectTimeoutMs: cp.connectTimeout },
    outlierDetection: { consecutive5xxErrors: od.consecutive5xxErrors, consecutiveGatewayErrors: od.consecutiveGatewayErrors, intervalMs: od.interval, baseEjectionTimeMs: od.baseEjectionTime, maxEjectionPercent: od.maxEjectionPercent },
    retryBudget: { percent: rb.percent, minRetriesPerSecond: rb.minRetriesPerSecond, ttlMs: rb.ttl },
    ...(rl ? { rateLimit: { ...bucketOf(rl), ...(rl.identity ? { identity: bucketOf(rl.identity) } : {}) } } : {}),
  }
}

function bucketOf(b: { maxTokens: number; tokensPerFill: number; fillInterval: number }): RateBucket {
  return { maxTokens: b.maxTokens, tokensPerFill: b.tokensPerFill, fillIntervalMs: b.fillInterval }
}

function weighted(index: PolicyIndex, ns: string, refs: readonly { name: string; namespace?: string | undefined; port: number; weight: number }[]): WeightedBackends {
  const backends: { servicePort: string; weight: number }[] = []
  const cumulative: number[] = []
  let total = 0
  for (const ref of refs) {
    const res = resolveServiceRef(index, ns, ref)
    if (!res.ok || ref.weight === 0) continue
    total += ref.weight
    backends.push({ servicePort: servicePortKey(serviceKeyOf(res.service), ref.port), weight: ref.weight })
    cumulative.push(total)
  }
  return { backends, cumulative, total }
}

function attachRoutes(index: PolicyIndex, servicePorts: Map<string, Mutable<ServicePortInfo>>): void {
  const parentPorts = (ns: string, ref: { name: string; namespace?: string | undefined; port?: number | undefined }, http: boolean): string[] => {
    const res = resolveServiceRef(index, ns, ref)
    if (!res.ok) return []
    return res.ports.filter((p) => !http || isHttpProtocol(p.protocol)).map((p) => servicePortKey(serviceKeyOf(res.service), p.port))
  }
  for (const r of index.tcpRoutes.values()) {
    const ns = r.doc.metadata.namespace
    const route = memo(tcpRouteMemo, r, (): PortRoute => ({ kind: 'tcp', route: r.key, backends: weighted(index, ns, r.doc.spec.rules[0]!.backendRefs) }))
    for (const ref of r.doc.spec.parentRefs) for (const pk of parentPorts(ns, ref, false)) servicePorts.get(pk)!.route = route
  }
  const rulesByPort = new Map<string, CompiledHTTPRule[]>()
  for (const r of index.httpRoutes.values()) {
    const ns = r.doc.metadata.namespace
    const rules = memo(httpRulesMemo, r, () => r.doc.spec.rules.flatMap((rule, i) => compileHttpRule(index, r.key, ns, rule, i)))
    for (const ref of r.doc.spec.parentRefs) {
      for (const pk of parentPorts(ns, ref, true)) {
        let list = rulesByPort.get(pk)
        if (!list) rulesByPort.set(pk, (list = []))
        list.push(...rules)
      }
    }
  }
  for (const [pk, rules] of rulesByPort) servicePorts.get(pk)!.route = { kind: 'http', rules: rules.sort(precedence) }
}

type RuleSpec = LoadedDoc<'HTTPRoute'>['doc']['spec']['rules'][number]

/** One compiled entry per match of the rule, so matches sort by Gateway API precedence individually. */
function compileHttpRule(index: PolicyIndex, route: string, ns: string, rule: RuleSpec, i: number): CompiledHTTPRule[] {
  const base: Mutable<Omit<CompiledHTTPRule, 'match'>> = {
    route, rule: i,
    ...(rule.name !== undefined ? { name: rule.name } : {}),
    backends: weighted(index, ns, rule.backendRefs),
    timeouts: {
      ...(rule.timeouts?.request !== undefined ? { requestMs: rule.timeouts.request } : {}),
      ...(rule.timeouts?.backendRequest !== undefined ? { backendRequestMs: rule.timeouts.backendRequest } : {}),
    },
  }
  if (rule.retry) {
    const r = rule.retry
    base.retry = { attempts: r.attempts, codes: new Set(r.codes), grpcStatuses: new Set(r.grpcStatuses.map((n) => GRPC_STATUS[n])), backoffMs: r.backoff, allowNonIdempotent: r.allowNonIdempotent }
  }
  for (const f of rule.filters) {
    if (f.type === 'RequestHeaderModifier') base.requestHeaders = modifier(f.requestHeaderModifier)
    else if (f.type === 'ResponseHeaderModifier') base.responseHeaders = modifier(f.responseHeaderModifier)
    else if (f.type === 'URLRewrite') {
      const { hostname, path } = f.urlRewrite
      base.urlRewrite = { ...(hostname !== undefined ? { hostname } : {}), ...(path ? { path: pathModifier(path) } : {}) }
    } else if (f.type === 'RequestRedirect') {
      const { scheme, hostname, path, port, statusCode } = f.requestRedirect
      base.redirect = {
        ...(scheme !== undefined ? { scheme } : {}),
        ...(hostname !== undefined ? { hostname } : {}),
        ...(path ? { path: pathModifier(path) } : {}),
        ...(port !== undefined ? { port } : {}),
        statusCode,
      }
    } else if (f.type === 'RequestMirror') {
      const res = resolveServiceRef(index, ns, f.requestMirror.backendRef)
      if (res.ok) base.mirror = { servicePort: servicePortKey(serviceKeyOf(res.service), f.requestMirror.backendRef.port), percent: f.requestMirror.percent }
    } else {
      base.fault = {
        ...(f.fault.delay ? { delay: { fixedDelayMs: f.fault.delay.fixedDelay, percent: f.fault.delay.percent } } : {}),
        ...(f.fault.abort ? { abort: f.fault.abort } : {}),
      }
    }
  }
  // An empty list is Gateway API's default too: match everything.
  const matches: RuleSpec['matches'] = rule.matches.length > 0 ? rule.matches : [{}]
  return matches.map((m) => ({ ...base, match: compileMatch(m) }))
}

function pathModifier(p: { type: 'ReplaceFullPath' | 'ReplacePrefixMatch'; replaceFullPath?: string | undefined; replacePrefixMatch?: string | undefined }): HTTPPathModifier {
  return { type: p.type, value: (p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.replacePrefixMatch)! }
}

/** Gateway API: of entries naming the same header or query parameter, only the first counts. */
function firstOfEachName<T extends { name: string }>(list: readonly T[] | undefined): T[] {
  if (!list) return []
  const seen = new Set<string>()
  return list.filter((x) => !seen.has(x.name) && seen.add(x.name))
}

function compileMatch(m: RuleSpec['matches'][number]): CompiledMatch {
  const regex = (s: string): RegExp | undefined => { const r = checkRegex(s); return r.ok ? r.regex : undefined }
  const matcher = <T extends { type: 'Exact' | 'RegularExpression'; name: string; value: string }>(x: T) =>
    x.type === 'RegularExpression' ? { type: x.type, name: x.name, value: x.value, regex: regex(x.value)! } : { type: x.type, name: x.name, value: x.value }
  const type = m.path?.type ?? 'PathPrefix'
  let value = m.path?.value ?? '/'
  // Gateway API: a PathPrefix's trailing slash is ignored; "/foo/" matches "/foo" too.
  if (type === 'PathPrefix' && value.length > 1 && value.endsWith('/')) value = value.replace(/\/+$/, '')
  return {
    path: type === 'RegularExpression' ? { type, value, regex: regex(value)! } : { type, value },
    // Header names are lowercase already (the schema lowercases them), so equal names are equal strings.
    headers: firstOfEachName(m.headers).map(matcher),
    queryParams: firstOfEachName(m.queryParams).map(matcher),
    ...(m.method ? { method: m.method } : {}),
  }
}

// Gateway API leaves RegularExpression's place to the implementation; hostmesh puts it after
// every prefix (issue #12), so a regular expression never shadows a plain prefix.
const PATH_RANK = { Exact: 0, PathPrefix: 1, RegularExpression: 2 } as const

/**
 * Gateway API precedence: an exact path, then the longest prefix, then regular expressions;
 * then a method match; then more header matches; then more query matches. Then the oldest
 * route, but routes have no creation timestamp here, so Gateway API's next criterion decides:
 * "{namespace}/{name}" in alphabetical order (the key's common "HTTPRoute/" prefix keeps that
 * order). Then rule order, then match order: the matches of a rule are listed in order and
 * Array.prototype.sort is stable.
 */
function precedence(a: CompiledHTTPRule, b: CompiledHTTPRule): number {
  return PATH_RANK[a.match.path.type] - PATH_RANK[b.match.path.type]
    || (a.match.path.type === 'PathPrefix' ? b.match.path.value.length - a.match.path.value.length : 0)
    || Number(b.match.method !== undefined) - Number(a.match.method !== undefined)
    || b.match.headers.length - a.match.headers.length
    || b.match.queryParams.length - a.match.queryParams.length
    || (a.route < b.route ? -1 : a.route > b.route ? 1 : 0)
    || a.rule - b.rule
}

function modifier(m: { set?: { name: string; value: string }[] | undefined; add?: { name: string; value: string }[] | undefined; remove?: string[] | undefined }): HeaderModifier {
  // Gateway API keys set by name: a second entry for the same header is ignored.
  return { set: firstOfEachName(m.set), add: m.add ?? [], remove: m.remove ?? [] }
}

const lower = (s: string): string => s.toLowerCase()

function compileAuthz(key: string, d: LoadedDoc<'AuthorizationPolicy'>): CompiledAuthzPolicy {
  const opt = <T, U>(v: T | undefined, f: (v: T) => U): U | undefined => (v === undefined ? undefined : f(v))
  const rules: CompiledAuthzRule[] = d.doc.spec.rules.map((r) => {
    const rule: Mutable<CompiledAuthzRule> = {}
    if (r.from) {
      rule.from = r.from.map(({ source: s }) => strip({
        principals: opt(s.principals, (p) => patternSet(p, principalOf)),
        notPrincipals: opt(s.notPrincipals, (p) => patternSet(p, principalOf)),
        namespaces: opt(s.namespaces, (p) => patternSet(p)),
        notNamespaces: opt(s.notNamespaces, (p) => patternSet(p)),
      }))
    }
    if (r.to) {
      rule.to = r.to.map(({ operation: o }) => strip({
        ports: opt(o.ports, (p) => new Set(p)),
        notPorts: opt(o.notPorts, (p) => new Set(p)),
        methods: opt(o.methods, (m) => new Set<string>(m)),
        notMethods: opt(o.notMethods, (m) => new Set<string>(m)),
        paths: opt(o.paths, (p) => patternSet(p)),
        notPaths: opt(o.notPaths, (p) => patternSet(p)),
        hosts: opt(o.hosts, (p) => patternSet(p, lower)),
        notHosts: opt(o.notHosts, (p) => patternSet(p, lower)),
      }))
    }
    return rule
  })
  return { key, action: d.doc.spec.action, rules }
}

function strip<T extends object>(o: T): { [K in keyof T]: Exclude<T[K], undefined> } {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as { [K in keyof T]: Exclude<T[K], undefined> }
}

function assignOutboundPorts(index: PolicyIndex, workloads: ReadonlyMap<string, WorkloadInfo>, opts: CompileOptions, problems: SourceProblem[]): { workload: WorkloadInfo; outboundPort: number }[] {
  if (opts.localNode === undefined) return []
  const local = [...workloads.values()].filter((w) => w.node === opts.localNode).sort((a, b) => (a.key < b.key ? -1 : 1))
  const base = opts.outboundBase ?? 15001
  const taken = new Set(opts.reservedPorts ?? [])
  const out = new Map<string, number>()
  // Survivors keep their port: an outbound port names its workload, and moving it while
  // iptables rules and listeners catch up would misattribute connections.
  const had = opts.previous ? opts.previous.localWorkloads.map((l) => [l.workload.key, l.outboundPort] as const) : [...(opts.restoredPorts ?? [])]
  for (const [key, port] of had) {
    if (local.some((w) => w.key === key) && !taken.has(port) && port >= base) {
      out.set(key, port)
      taken.add(port)
    }
  }
  // A port freed by a workload that left is not given to a newcomer in the same change:
  // the old uid → port rule may still be live until iptables is synced, and the newcomer's
  // listener would be credited with the old workload's connections. The quarantine lasts
  // one generation.
  for (const [, port] of had) taken.add(port)
  let next = base
  for (const w of local) {
    if (out.has(w.key)) continue
    while (taken.has(next)) next++
    if (next > 65535) {
      problems.push(problemAt(index.workloads.get(w.key)!, ['metadata', 'name'], `no outbound port left for workload "${w.key}": ports ${base}-65535 are all taken; lower ports.outboundBase`))
      continue
    }
    out.set(w.key, next)
    taken.add(next)
  }
  return local.filter((w) => out.has(w.key)).map((w) => ({ workload: w, outboundPort: out.get(w.key)! })).sort((a, b) => a.outboundPort - b.outboundPort)
}
