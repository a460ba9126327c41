// HTTPRoute (Gateway API, GAMMA: parentRefs name Services). Field names are Gateway API's;
// the Fault filter is hostmesh's, modelled on Istio's HTTPFaultInjection.
import { z } from 'zod'
import { documentSchema, duration, headerName, httpMethod, namespacedMetadata, percent, port, serviceRef } from './common.ts'
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

const header = z.strictObject({ name: headerName, value: z.string().max(4096) })
const headerModifier = z.strictObject({
  set: z.array(header).max(16).optional(),
  add: z.array(header).max(16).optional(),
  remove: z.array(headerName).max(16).optional(),
})

const FILTER_TYPES = ['RequestHeaderModifier', 'ResponseHeaderModifier', 'URLRewrite', 'RequestMirror', 'Fault'] as const

export const HTTPRouteFilterSchema = z.discriminatedUnion('type', [
  z.strictObject({ type: z.literal('RequestHeaderModifier'), requestHeaderModifier: headerModifier }),
  z.strictObject({ type: z.literal('ResponseHeaderModifier'), responseHeaderModifier: headerModifier }),
  z.strictObject({
    type: z.literal('URLRewrite'),
    urlRewrite: z.strictObject({
      hostname: z.string().min(1).max(253).optional(),
      path: z.strictObject({
        type: z.enum(['ReplaceFullPath', 'ReplacePrefixMatch']),
        replaceFullPath: z.string().startsWith('/').optional(),
        replacePrefixMatch: z.string().startsWith('/').optional(),
      }).refine((p) => (p.type === 'ReplaceFullPath' ? p.replaceFullPath : p.replacePrefixMatch) !== undefined, {
        message: 'ReplaceFullPath needs replaceFullPath and ReplacePrefixMatch needs replacePrefixMatch',
      }).optional(),
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

export const HTTPRouteRuleSchema = z.strictObject({
  name: z.string().max(253).optional(),
  // No matches: everything (PathPrefix "/"), as in Gateway API.
  matches: z.array(HTTPRouteMatchSchema).max(64).default([{}]),
  filters: z.array(HTTPRouteFilterSchema).max(16).default([]),
  // No backendRefs: requests get 500, as in Gateway API.
  backendRefs: z.array(BackendRefSchema).max(64).default([]),
  timeouts: z.strictObject({ request: duration.optional(), backendRequest: duration.optional() }).optional(),
  // Gateway API HTTPRouteRetry (GEP-1731).
  retry: z.strictObject({
    attempts: z.number().int().min(0).max(10).default(2),
    codes: z.array(z.number().int().min(400).max(599)).max(32).default([503]),
    backoff: duration.prefault('25ms'),
  }).optional(),
})

export const HTTPRouteSchema = documentSchema('HTTPRoute', namespacedMetadata, z.strictObject({
  parentRefs: z.array(ParentRefSchema).min(1).max(32),
  rules: z.array(HTTPRouteRuleSchema).min(1).max(64),
}))
