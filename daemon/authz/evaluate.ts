// AuthorizationPolicy evaluation, as Istio does it: any matching DENY denies; then, if the
// workload has ALLOW policies, one of them must match; with none, everything is allowed.
// Pure and allocation-free: the policies were compiled into sets and patterns with the
// snapshot.
import { matchesPattern, principalOf } from '../../policy/patterns.ts'
import type { CompiledAuthzPolicy, CompiledAuthzRule, PatternSet, WorkloadAuthz } from '../../policy/snapshot.ts'
import { parseWorkloadId } from '../../certs/spiffe.ts'

export interface AuthzRequest {
  /** The peer's SPIFFE ID; absent for plaintext (PERMISSIVE) traffic, which has no identity. */
  readonly identity?: string
  /** The destination workload port. */
  readonly port: number
  /** HTTP only; absent for a TCP connection. */
  readonly method?: string
  readonly path?: string
  /** The request's authority (Host / :authority). */
  readonly host?: string
  /**
   * `connect`: the CONNECT that opens a connection to an http/grpc port, whose requests are
   * checked one by one later. It is admitted when some ALLOW rule could allow a request on
   * it, and refused only by DENY rules that need no request fields.
   */
  readonly stage?: 'connect'
}

export type AuthzDecision =
  | { readonly allowed: true; readonly policy?: string }
  | { readonly allowed: false; readonly policy?: string; readonly reason: string }

export function authorize(authz: WorkloadAuthz | undefined, req: AuthzRequest): AuthzDecision {
  if (!authz) return { allowed: true }
  const source = sourceOf(req)
  for (const p of authz.deny) {
    if (matchesPolicy(p, req, source)) return { allowed: false, policy: p.key, reason: `denied by ${p.key}` }
  }
  if (authz.allow.length === 0) return { allowed: true }
  for (const p of authz.allow) {
    if (matchesPolicy(p, req, source)) return { allowed: true, policy: p.key }
  }
  return { allowed: false, reason: `no ALLOW policy matched (${authz.allow.map((p) => p.key).join(', ')})` }
}

interface Source { readonly principal?: string; readonly namespace?: string }

function sourceOf(req: AuthzRequest): Source {
  if (req.identity === undefined) return {}
  const ns = parseWorkloadId(req.identity)?.namespace
  return { principal: principalOf(req.identity), ...(ns !== undefined ? { namespace: ns } : {}) }
}

function matchesPolicy(p: CompiledAuthzPolicy, req: AuthzRequest, source: Source): boolean {
  return p.rules.some((r) => matchesRule(r, req, source, p.action))
}

function matchesRule(r: CompiledAuthzRule, req: AuthzRequest, s: Source, action: 'ALLOW' | 'DENY'): boolean {
  // A source condition needs an identity: plaintext traffic matches no principals and no
  // namespaces (so `principals: ["*"]` means "any mTLS peer", as in Istio).
  const fromOk = !r.from || r.from.some((f) =>
    (!f.principals || (s.principal !== undefined && matchesPattern(f.principals, s.principal)))
    && (!f.notPrincipals || s.principal === undefined || !matchesPattern(f.notPrincipals, s.principal))
    && (!f.namespaces || (s.namespace !== undefined && matchesPattern(f.namespaces, s.namespace)))
    && (!f.notNamespaces || s.namespace === undefined || !matchesPattern(f.notNamespaces, s.namespace)))
  if (!fromOk) return false
  return !r.to || r.to.some((o) => {
    if ((o.ports && !o.ports.has(req.port)) || (o.notPorts && o.notPorts.has(req.port))) return false
    const httpFields = o.methods || o.notMethods || o.paths || o.notPaths || o.hosts || o.notHosts
    if (req.method === undefined) {
      // The request is not known yet (an HTTP port's CONNECT): a rule with HTTP fields could
      // still allow some request, and cannot deny all of them.
      if (req.stage === 'connect') return action === 'ALLOW' || !httpFields
      // TCP: HTTP-only fields cannot be checked. As Istio: an ALLOW rule with them never
      // matches (fail closed); a DENY rule is applied without them (fail closed too).
      return !httpFields || action === 'DENY'
    }
    return (!o.methods || o.methods.has(req.method))
      && (!o.notMethods || !o.notMethods.has(req.method))
      && (!o.paths || (req.path !== undefined && matchesPattern(o.paths, req.path)))
      && (!o.notPaths || req.path === undefined || !matchesPattern(o.notPaths, req.path))
      && (!o.hosts || (req.host !== undefined && hostMatches(o.hosts, req.host)))
      && (!o.notHosts || req.host === undefined || !hostMatches(o.notHosts, req.host))
  })
}

/** Istio matches hosts case-insensitively; a pattern without a port also matches `host:port`. */
function hostMatches(set: PatternSet, host: string): boolean {
  const h = host.toLowerCase()
  if (matchesPattern(set, h)) return true
  const colon = h.lastIndexOf(':')
  return colon > 0 && h.indexOf(']') < colon && matchesPattern(set, h.slice(0, colon))
}
