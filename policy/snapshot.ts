// The compiled, frozen policy the data plane reads. Built whole by compile.ts, deep-frozen,
// and swapped by one reference; a connection keeps the snapshot it started with. Everything
// a hot path needs is a map lookup here: nothing is parsed or sorted per request.
import type { Kind } from './schema/documents.ts'

export type Protocol = 'tcp' | 'http' | 'http2' | 'grpc'
export type MtlsMode = 'STRICT' | 'PERMISSIVE'
export type LoadBalancerType = 'P2C_EWMA' | 'LEAST_REQUEST' | 'ROUND_ROBIN' | 'RANDOM'

export interface NodeInfo {
  readonly name: string
  readonly addresses: readonly string[]
  readonly hbonePort: number
}

export interface WorkloadInfo {
  readonly key: string
  readonly name: string
  readonly namespace: string
  readonly node: string
  readonly serviceAccount: string
  /** spiffe://<trustDomain>/ns/<namespace>/sa/<serviceAccount> */
  readonly identity: string
  readonly labels: Readonly<Record<string, string>>
  readonly match: { readonly uid?: number; readonly address?: string }
  readonly addresses: readonly string[]
  readonly ports: readonly { readonly name?: string; readonly port: number }[]
  readonly mtlsMode: MtlsMode
}

export interface Endpoint {
  /** Where to connect (through the tunnel, for a mesh workload). */
  readonly address: string
  readonly port: number
  /** Mesh workload key; absent for an explicit endpoint outside the mesh (plain TCP). */
  readonly workload?: string
  /** The SPIFFE ID the destination must present; absent outside the mesh. */
  readonly identity?: string
  /** The destination node's HBONE address; absent outside the mesh. */
  readonly node?: { readonly name: string; readonly addresses: readonly string[]; readonly hbonePort: number }
}

export interface DestinationSettings {
  /** The DestinationPolicy that set these, or "default". */
  readonly source: string
  readonly loadBalancer: LoadBalancerType
  readonly connectionPool: { readonly maxConnections: number; readonly maxPendingRequests: number; readonly maxRequests: number; readonly connectTimeoutMs: number }
  readonly outlierDetection: { readonly consecutive5xxErrors: number; readonly consecutiveGatewayErrors: number; readonly intervalMs: number; readonly baseEjectionTimeMs: number; readonly maxEjectionPercent: number }
  readonly retryBudget: { readonly percent: number; readonly minRetriesPerSecond: number; readonly ttlMs: number }
  readonly rateLimit?: RateBucket & { readonly identity?: RateBucket }
}

/** Envoy's token bucket: `maxTokens` at most, `tokensPerFill` added every `fillIntervalMs`. */
export interface RateBucket {
  readonly maxTokens: number
  readonly tokensPerFill: number
  readonly fillIntervalMs: number
}

/** A rate limit the destination host enforces on one workload port. */
export interface WorkloadRateLimit {
  /** The DestinationPolicy that set it. */
  readonly policy: string
  /** `<name>.<namespace>` of the Service it came with. */
  readonly service: string
  readonly limit: RateBucket & { readonly identity?: RateBucket }
}

/** Weighted choice, precomputed: pick r in [0, total) and take the first cumulative > r. */
export interface WeightedBackends {
  readonly backends: readonly { readonly servicePort: string; readonly weight: number }[]
  readonly cumulative: readonly number[]
  readonly total: number
}

export interface StringMatcher {
  readonly type: 'Exact' | 'RegularExpression'
  readonly value: string
  /** RegularExpression only: anchored to the whole value at compile time. */
  readonly regex?: RegExp
}

export interface CompiledMatch {
  /**
   * A PathPrefix value has no trailing "/" (Gateway API ignores it), except the prefix "/"
   * itself, which matches every path.
   */
  readonly path: { readonly type: 'Exact' | 'PathPrefix' | 'RegularExpression'; readonly value: string; readonly regex?: RegExp }
  /** Names lowercase; a name given twice keeps only its first entry (Gateway API). */
  readonly headers: readonly (StringMatcher & { readonly name: string })[]
  /** Names as written (case-sensitive); a name given twice keeps only its first entry. */
  readonly queryParams: readonly (StringMatcher & { readonly name: string })[]
  readonly method?: string
}

export interface HeaderModifier {
  /** Names lowercase. */
  readonly set: readonly { readonly name: string; readonly value: string }[]
  readonly add: readonly { readonly name: string; readonly value: string }[]
  readonly remove: readonly string[]
}

/** Gateway API HTTPPathModifier. */
export interface HTTPPathModifier {
  readonly type: 'ReplaceFullPath' | 'ReplacePrefixMatch'
  /** The new full path, or what replaces the matched prefix ("" strips it). */
  readonly value: string
}

/** Gateway API HTTPURLRewriteFilter. */
export interface HTTPURLRewrite {
  /** Replaces the whole authority (Host / :authority). */
  readonly hostname?: string
  readonly path?: HTTPPathModifier
}

/** Gateway API HTTPRequestRedirectFilter: hostmesh answers the request itself. */
export interface HTTPRequestRedirect {
  readonly scheme?: 'http' | 'https'
  readonly hostname?: string
  readonly path?: HTTPPathModifier
  readonly port?: number
  readonly statusCode: 301 | 302
}

export interface CompiledRetry {
  /** Retries after the first try. */
  readonly attempts: number
  readonly codes: ReadonlySet<number>
  /** gRPC status numbers retried when a trailers-only answer carries one. */
  readonly grpcStatuses: ReadonlySet<number>
  readonly backoffMs: number
  readonly allowNonIdempotent: boolean
}

export interface CompiledHTTPRule {
  /** `HTTPRoute/<ns>/<name>` and rule index: for logs, metrics and /config_dump. */
  readonly route: string
  readonly rule: number
  /** The rule's `name`, when it has one. */
  readonly name?: string
  /** One compiled rule per match of the source rule, so each sorts by its own precedence. */
  readonly match: CompiledMatch
  readonly requestHeaders?: HeaderModifier
  readonly responseHeaders?: HeaderModifier
  readonly urlRewrite?: HTTPURLRewrite
  /** Present: answer with a redirect; the rule has no backends (validation ensures it). */
  readonly redirect?: HTTPRequestRedirect
  readonly mirror?: { readonly servicePort: string; readonly percent: number }
  readonly fault?: { readonly delay?: { readonly fixedDelayMs: number; readonly percent: number }; readonly abort?: { readonly httpStatus: number; readonly percent: number } }
  /** No backends: answer 500 (Gateway API). */
  readonly backends: WeightedBackends
  readonly timeouts: { readonly requestMs?: number; readonly backendRequestMs?: number }
  readonly retry?: CompiledRetry
}

export type PortRoute =
  | { readonly kind: 'tcp'; readonly route: string; readonly backends: WeightedBackends }
  /** Rules in Gateway API precedence order: the first that matches a request wins. */
  | { readonly kind: 'http'; readonly rules: readonly CompiledHTTPRule[] }

export interface ServicePortInfo {
  /** `<namespace>/<service>:<port>` */
  readonly key: string
  readonly service: string
  readonly name?: string
  readonly port: number
  readonly protocol: Protocol
  readonly endpoints: readonly Endpoint[]
  /** Absent: connections go to this port's own endpoints. */
  readonly route?: PortRoute
}

export interface ServiceInfo {
  readonly key: string
  readonly name: string
  readonly namespace: string
  readonly addresses: readonly string[]
  /** Explicit endpoints: a destination outside the mesh. */
  readonly external: boolean
  readonly ports: readonly string[]
  readonly destination: DestinationSettings
}

export interface PatternSet {
  readonly any: boolean
  readonly exact: ReadonlySet<string>
  readonly prefixes: readonly string[]
  readonly suffixes: readonly string[]
}

export interface CompiledAuthzRule {
  /** Absent: any source. Otherwise one of these must match (each: all its fields). */
  readonly from?: readonly { readonly principals?: PatternSet; readonly notPrincipals?: PatternSet; readonly namespaces?: PatternSet; readonly notNamespaces?: PatternSet }[]
  readonly to?: readonly { readonly ports?: ReadonlySet<number>; readonly notPorts?: ReadonlySet<number>; readonly methods?: ReadonlySet<string>; readonly notMethods?: ReadonlySet<string>; readonly paths?: PatternSet; readonly notPaths?: PatternSet; readonly hosts?: PatternSet; readonly notHosts?: PatternSet }[]
}

export interface CompiledAuthzPolicy {
  readonly key: string
  readonly action: 'ALLOW' | 'DENY'
  readonly rules: readonly CompiledAuthzRule[]
}

export interface WorkloadAuthz {
  readonly deny: readonly CompiledAuthzPolicy[]
  readonly allow: readonly CompiledAuthzPolicy[]
}

export interface SnapshotFile {
  readonly path: string
  readonly sha256: string
  readonly documents: number
}

export interface Snapshot {
  readonly generation: number
  /** sha256 over the policy files' names and contents. */
  readonly hash: string
  readonly createdAt: string
  readonly trustDomain: string
  /** The node this snapshot was compiled for; absent for an offline `validate`. */
  readonly localNode?: string
  readonly files: readonly SnapshotFile[]
  readonly counts: Readonly<Record<Kind, number>>
  readonly nodes: ReadonlyMap<string, NodeInfo>
  readonly workloads: ReadonlyMap<string, WorkloadInfo>
  readonly services: ReadonlyMap<string, ServiceInfo>
  readonly servicePorts: ReadonlyMap<string, ServicePortInfo>
  /** addressKey(vip, port) → the service port a captured connection is headed for. */
  readonly byDestination: ReadonlyMap<string, ServicePortInfo>
  /** addressKey(ip, port) → the workload an HBONE :authority names. */
  readonly workloadByAddress: ReadonlyMap<string, WorkloadInfo>
  /** addressKey(workload ip, port) → how the destination reads it; absent: tcp. */
  readonly workloadPortProtocol: ReadonlyMap<string, Protocol>
  /** addressKey(workload ip, port) → the local rate limit its requests meet on their host. */
  readonly workloadRateLimits: ReadonlyMap<string, WorkloadRateLimit>
  /** This node's workloads and their outbound capture ports, in port order. */
  readonly localWorkloads: readonly { readonly workload: WorkloadInfo; readonly outboundPort: number }[]
  readonly outboundByPort: ReadonlyMap<number, WorkloadInfo>
  /** Workload key → its AuthorizationPolicies, DENY and ALLOW. */
  readonly authorization: ReadonlyMap<string, WorkloadAuthz>
  /**
   * The settings of a destination no DestinationPolicy names (a workload dialled by its own
   * address, a service port whose Service is gone): compiled here, so the data path (and
   * every worker thread) needs neither the schema nor the compiler.
   */
  readonly defaultDestination: DestinationSettings
}
