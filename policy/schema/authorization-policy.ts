// AuthorizationPolicy (Istio's fields and semantics): DENY policies first, then, if any ALLOW
// policy selects the workload, the request must match one. Principals are Istio-style
// "<trustDomain>/ns/<ns>/sa/<sa>" (a "spiffe://" prefix is accepted), with one "*" at the
// start or the end, or "*" alone.
import { z } from 'zod'
import { documentSchema, dnsLabel, httpMethod, labels, namespacedMetadata, port } from './common.ts'

// One "*" at most, at the start or the end: "*x*" or "**" would otherwise compile to a
// literal prefix that never matches, and a DENY rule that never matches fails open.
function wildcardOk(s: string): boolean {
  const stars = s.split('*').length - 1
  return stars === 0 || (stars === 1 && (s.startsWith('*') || s.endsWith('*')))
}

const principal = z.string().min(1).max(512).refine(wildcardOk, {
  message: 'expected a principal with at most one "*", at its start or its end, such as "cluster.local/ns/shop/sa/*"',
})

const portString = z.union([port, z.string().regex(/^[0-9]{1,5}$/).transform(Number).pipe(port)], {
  error: 'expected a port number (1-65535)',
})

// Istio path patterns: exact, "/prefix*", "*suffix", or "*".
const pathPattern = z.string().min(1).max(1024).refine(wildcardOk, {
  message: 'expected a path with at most one "*", at its start or its end, such as "/api/*"',
})

const hostPattern = z.string().min(1).max(261).refine(wildcardOk, {
  message: 'expected a host with at most one "*", at its start or its end, such as "*.example.com"',
})

export const AuthorizationRuleSchema = z.strictObject({
  from: z.array(z.strictObject({
    source: z.strictObject({
      principals: z.array(principal).min(1).max(256).optional(),
      notPrincipals: z.array(principal).min(1).max(256).optional(),
      namespaces: z.array(dnsLabel.or(z.literal('*'))).min(1).max(256).optional(),
      notNamespaces: z.array(dnsLabel).min(1).max(256).optional(),
    }),
  })).max(64).optional(),
  to: z.array(z.strictObject({
    operation: z.strictObject({
      ports: z.array(portString).min(1).max(64).optional(),
      notPorts: z.array(portString).min(1).max(64).optional(),
      methods: z.array(httpMethod).min(1).optional(),
      notMethods: z.array(httpMethod).min(1).optional(),
      paths: z.array(pathPattern).min(1).max(256).optional(),
      notPaths: z.array(pathPattern).min(1).max(256).optional(),
      // Matched against the request's authority, case-insensitively, with or without its port.
      hosts: z.array(hostPattern).min(1).max(256).optional(),
      notHosts: z.array(hostPattern).min(1).max(256).optional(),
    }),
  })).max(64).optional(),
})

export const AuthorizationPolicySchema = documentSchema('AuthorizationPolicy', namespacedMetadata, z.strictObject({
  // Absent: every workload in the policy's namespace.
  selector: z.strictObject({ matchLabels: labels }).optional(),
  action: z.enum(['ALLOW', 'DENY']).default('ALLOW'),
  // ALLOW with no rules allows nothing; a rule that is {} matches everything (Istio).
  rules: z.array(AuthorizationRuleSchema).max(64).default([]),
}))
