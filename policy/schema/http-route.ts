// HTTPRoute (Gateway API, GAMMA: parentRefs name Services). Field names are Gateway API's;
// the Fault filter is hostmesh's, modelled on Istio's HTTPFaultInjection.
import { z } from 'zod'
import { dnsName, documentSchema, duration, headerName, httpMethod, namespacedMetadata, percent, port, serviceRef } from './common.ts'
import { BackendRefSchema, ParentRefSchema } from './tcp-route.ts'

const pathMatch = z.strictObject({
  type: z.enum(['Exact', 'PathPrefix', 'RegularExpression']).default('PathPrefix'),
  value: z.string().min(1).max(1024).default('/'),
}).refine((p) => p.type === 'RegularExpression' || p.value.startsWith('/'), { message: 'an Exact or PathPrefix path must start with "/"', path: ['value'] })

const valueMatch = z.strictObject({
  type: z.enum(['Exact', 'RegularExpression']).default('Exact'),
  name: z.string().min(1).max(256),
  value: z.string().max(4096),
})

export const HTTPRouteMatchSchema = z.strictObject({
  path: pathMatch.optional(),
  headers: z.array(valueMatch.extend({ name: headerName })).max(16).optional(),
  queryParams: z.array(valueMatch).max(16).optional(),
  method: httpMethod.optional(),
})

// A value goes onto the wire as written: CR, LF and other control characters would split or
// corrupt the header block (and node refuses them), so they are refused at load.
const headerValue = z.string().max(4096).regex(/^[\t\x20-\x7e\x80-\xff]*$/, {
  message: 'expected a header value of visible characters, spaces and tabs (no CR, LF or other control characters)',
})
const header = z.strictObject({ name: headerName, value: headerValue })
const headerModifier = z.strictObject({
  set: z.array(header).max(16).optional(),
  add: z.array(header).max(16).optional(),
  remove: z.array(headerName).max(16).optional(),
})

// RFC 3986 path characters, percent-encoded octets allowed: a replacement path is written into
// the request line or the Location header, so nothing may end it early ("?", "#", space, CR/LF).
const PATH_CHARS = "(?:[-A-Za-z0-9/._~!$&'()*+,;=:@]|%[0-9A-Fa-f]{2})*"
const PATH_MESSAGE = 'RFC 3986 path characters; percent-encode anything else'
const fullPath = z.string().max(1024).regex(new RegExp(`^/${PATH_CHARS}$`), { message: `expected a path starting with "/" (${PATH_MESSAGE})` })
// "" strips the matched prefix (Gateway API's table for ReplacePrefixMatch).
const prefixReplacement = z.string().max(1024).regex(new RegExp(`^(?:/${PATH_CHARS})?$`), { message: `expected "" or a path starting with "/" (${PATH_MESSAGE})` })

/** Gateway API HTTPPathModifier, shared by URLRewrite and RequestRedirect. */
const pathModifier = z.strictObject({
  type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch']),
  replaceFullPath: fullPath.optional(),
  replacePrefixMatch: prefixReplacement.optional(),
}).refine((p) => (p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.replacePrefixMatch) !== undefined, {
  message: 'ReplaceFullPath needs replaceFullPath and ReplacePrefixMatch needs replacePrefixMatch',
})

const FILTER_TYPES = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'URLRewrite', 'RequestRedirect', 'RequestMirror', 'Fault'] as const

export const HTTPRouteFilterSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifier }),
  z.strictObject({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifier }),
  z.strictObject({
    type: z.literal('URLRewrite'),
    // hostname is a Gateway API PreciseHostname: a lowercase DNS name, no wildcard, no port.
    urlRewrite: z.strictObject({ hostname: dnsName.optional(), path: pathModifier.optional() }),
  }),
  // Gateway API HTTPRequestRedirectFilter. A rule with it may have neither backendRefs nor a
  // URLRewrite filter (validate.ts says so, as Gateway API's CEL rules do).
  z.strictObject({
    type: z.literal('RequestRedirect'),
    requestRedirect: z.strictObject({
      scheme: z.enum(['http', 'https']).optional(),
      hostname: dnsName.optional(),
      path: pathModifier.optional(),
      port: port.optional(),
      statusCode: z.literal([301, 302]).default(302),
    }),
  }),
  z.strictObject({
    type: z.literal('RequestMirror'),
    requestMirror: z.strictObject({
      backendRef: z.strictObject({ ...serviceRef, port }),
      percent: percent.default(100),
    }),
  }),
  z.strictObject({
    type: z.literal('Fault'),
    fault: z.strictObject({
      delay: z.strictObject({ fixedDelay: duration, percent: percent.default(100) }).optional(),
      abort: z.strictObject({ httpStatus: z.number().int().min(200).max(599), percent: percent.default(100) }).optional(),
    }).refine((f) => f.delay !== undefined || f.abort !== undefined, { message: 'a Fault filter needs delay, abort or both' }),
  }),
], { error: `expected a filter type: one of ${FILTER_TYPES.join(', ')}` })

/** The gRPC statuses a retry may be asked for: those Envoy's retry_on can name. */
export const GRPC_RETRYABLE = ['CANCELLED', 'DEADLINE_EXCEEDED', 'RESOURCE_EXHAUSTED', 'UNAVAILABLE'] as const

/** Their numbers (gRPC's status codes). */
export const GRPC_STATUS: Readonly<Record<typeof GRPC_RETRYABLE[number], number>> = { CANCELLED: 1, DEADLINE_EXCEEDED: 4, RESOURCE_EXHAUSTED: 8, UNAVAILABLE: 14 }

export const HTTPRouteRuleSchema = z.strictObject({
  name: z.string().max(253).optional(),
  // No matches: everything (PathPrefix "/"), as in Gateway API.
  matches: z.array(HTTPRouteMatchSchema).max(64).default([{}]),
  filters: z.array(HTTPRouteFilterSchema).max(16).default([]),
  // No backendRefs: requests get 500, as in Gateway API.
  backendRefs: z.array(BackendRefSchema).max(64).default([]),
  timeouts: z.strictObject({ request: duration.optional(), backendRequest: duration.optional() }).optional(),
  // Gateway API HTTPRouteRetry (GEP-1731), plus two fields of hostmesh's own.
  retry: z.strictObject({
    // Retries after the first try (GEP-1731's meaning), so at most attempts + 1 tries.
    attempts: z.number().int().min(0).max(10).default(2),
    codes: z.array(z.number().int().min(400).max(599)).max(32).default([500, 502, 503, 504]),
    backoff: duration.prefault('25ms'),
    // Trailers-only gRPC answers with one of these statuses are retried (Envoy's retry_on names).
    grpcStatuses: z.array(z.enum(GRPC_RETRYABLE)).max(4).default(['UNAVAILABLE']),
    // Methods that are not idempotent (POST, PATCH, CONNECT) are retried only when this is true.
    allowNonIdempotent: z.boolean().default(false),
  }).optional(),
})

export const HTTPRouteSchema = documentSchema('HTTPRoute', namespacedMetadata, z.strictObject({
  parentRefs: z.array(ParentRefSchema).min(1).max(32),
  rules: z.array(HTTPRouteRuleSchema).min(1).max(64),
}))
