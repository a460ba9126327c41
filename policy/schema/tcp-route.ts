// TCPRoute (Gateway API, GAMMA): weighted backends for a Service port carrying plain TCP.
import { z } from 'zod'
import { documentSchema, namespacedMetadata, port, serviceRef } from './common.ts'

export const ParentRefSchema = z.strictObject({ ...serviceRef, port: port.optional() })

export const BackendRefSchema = z.strictObject({
  ...serviceRef,
  port,
  weight: z.number().int().min(0).max(1_000_000).default(1),
})

export const TCPRouteSchema = documentSchema('TCPRoute', namespacedMetadata, z.strictObject({
  parentRefs: z.array(ParentRefSchema).min(1).max(32),
  rules: z.array(z.strictObject({
    name: z.string().optional(),
    backendRefs: z.array(BackendRefSchema).min(1).max(64),
  })).min(1).max(1),
}))
