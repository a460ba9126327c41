// Field types shared by every policy kind. Names and formats follow Kubernetes and Gateway
// API, so a value that is valid there is valid here (durations are GEP-2257 strings).
import { isIP } from 'node:net'
import { z } from 'zod'

export const API_VERSION = 'hostmesh.io/v1alpha1'

export const dnsLabel = z.string().regex(/^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$/, {
  message: 'expected a lowercase DNS label (a-z, 0-9 and "-", at most 63 characters)',
})

export const dnsName = z.string().max(253).regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, {
  message: 'expected a lowercase DNS name (a-z, 0-9, "-" and ".")',
})

export const ipAddress = z.string().refine((s) => isIP(s) !== 0, { message: 'expected an IPv4 or IPv6 address' })

export const port = z.number().int().min(1).max(65535)

export const percent = z.number().min(0).max(100)

// Gateway API Duration (GEP-2257): 1 to 4 groups of up to 5 digits with h, m, s or ms.
const DURATION = /^([0-9]{1,5}(h|m|s|ms)){1,4}$/
const UNIT_MS: Record<string, number> = { h: 3_600_000, m: 60_000, s: 1000, ms: 1 }

/** A duration string such as "500ms", "10s" or "1m30s", compiled to milliseconds. */
export const duration = z.string()
  .regex(DURATION, { message: 'expected a Gateway API duration such as "500ms", "10s" or "1m30s" (units h, m, s, ms)' })
  .transform((s) => parseDurationMs(s))

export function parseDurationMs(s: string): number {
  let total = 0
  for (const m of s.matchAll(/([0-9]+)(ms|h|m|s)/g)) total += Number(m[1]) * UNIT_MS[m[2]!]!
  return total
}

// Kubernetes label syntax: optional DNS prefix, then a name of up to 63 characters.
const labelKey = z.string().regex(/^([a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*\/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$/, {
  message: 'expected a label key such as "app" or "example.com/tier"',
})
const labelValue = z.string().regex(/^([A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?)?$/, {
  message: 'expected a label value: up to 63 of A-Z, a-z, 0-9, "-", "_", "."',
})
export const labels = z.record(labelKey, labelValue)

export const namespacedMetadata = z.strictObject({
  name: dnsLabel,
  namespace: dnsLabel.default('default'),
  labels: labels.default({}),
  annotations: z.record(z.string(), z.string()).optional(),
})

export const clusterMetadata = z.strictObject({
  name: dnsName,
  labels: labels.default({}),
  annotations: z.record(z.string(), z.string()).optional(),
})

/** At most one IPv4 and one IPv6 address, as for dual-stack Kubernetes objects. */
export const dualStackAddresses = z.array(ipAddress).max(2).refine(
  (list) => list.length < 2 || isIP(list[0]!) !== isIP(list[1]!),
  { message: 'expected at most one IPv4 and one IPv6 address' },
)

/** HTTP header names are tokens (RFC 9110); stored lowercase, as HTTP/2 sends them. */
export const headerName = z.string().regex(/^[!#$%&'*+\-.^_`|~0-9A-Za-z]+$/, { message: 'expected an HTTP header name (RFC 9110 token)' })
  .transform((s) => s.toLowerCase())

export const httpMethod = z.enum(['GET', 'HEAD', 'POST', 'PUT', 'DELETE', 'CONNECT', 'OPTIONS', 'TRACE', 'PATCH'])

/** A reference to a Service: by name, in the referring document's namespace unless given. */
export const serviceRef = {
  group: z.literal('').optional(),
  kind: z.literal('Service').default('Service'),
  name: dnsLabel,
  namespace: dnsLabel.optional(),
}

/** The envelope every kind shares: apiVersion, kind, metadata, spec; nothing else. */
export function documentSchema<K extends string, M extends z.ZodType, S extends z.ZodType>(kind: K, metadata: M, spec: S) {
  return z.strictObject({ apiVersion: z.literal(API_VERSION), kind: z.literal(kind), metadata, spec })
}
