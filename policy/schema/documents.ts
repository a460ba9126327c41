// Every kind, and the envelope checked first so that a wrong apiVersion or kind gets one
// precise message instead of a wall of mismatches against every kind.
import { z } from 'zod'
import { AuthorizationPolicySchema } from './authorization-policy.ts'
import { API_VERSION } from './common.ts'
import { DestinationPolicySchema } from './destination-policy.ts'
import { HTTPRouteSchema } from './http-route.ts'
import { NodeSchema } from './node.ts'
import { ServiceSchema } from './service.ts'
import { TCPRouteSchema } from './tcp-route.ts'
import { WorkloadSchema } from './workload.ts'

export const KIND_SCHEMAS = {
  Node: NodeSchema,
  Workload: WorkloadSchema,
  Service: ServiceSchema,
  HTTPRoute: HTTPRouteSchema,
  TCPRoute: TCPRouteSchema,
  DestinationPolicy: DestinationPolicySchema,
  AuthorizationPolicy: AuthorizationPolicySchema,
} as const

export type Kind = keyof typeof KIND_SCHEMAS
export const KINDS = Object.keys(KIND_SCHEMAS) as Kind[]

export const EnvelopeSchema = z.object({
  apiVersion: z.literal(API_VERSION, { error: `expected apiVersion "${API_VERSION}"` }),
  kind: z.enum(KINDS as [Kind, ...Kind[]]),
})

export type NodeDoc = z.output<typeof NodeSchema>
export type WorkloadDoc = z.output<typeof WorkloadSchema>
export type ServiceDoc = z.output<typeof ServiceSchema>
export type HTTPRouteDoc = z.output<typeof HTTPRouteSchema>
export type TCPRouteDoc = z.output<typeof TCPRouteSchema>
export type DestinationPolicyDoc = z.output<typeof DestinationPolicySchema>
export type AuthorizationPolicyDoc = z.output<typeof AuthorizationPolicySchema>
export type PolicyDoc = NodeDoc | WorkloadDoc | ServiceDoc | HTTPRouteDoc | TCPRouteDoc | DestinationPolicyDoc | AuthorizationPolicyDoc

/** One JSON Schema for a policy document, generated from the validator's own schemas. */
export function policyJsonSchema(): Record<string, unknown> {
  const oneOf = KINDS.map((k) => z.toJSONSchema(KIND_SCHEMAS[k], { io: 'input', unrepresentable: 'any' }))
  return {
    $schema: 'https://json-schema.org/draft/2020-12/schema',
    $id: 'https://hostmesh.io/schemas/policy-v1alpha1.json',
    title: 'hostmesh policy document',
    description: `A document of a /etc/hostmesh/policy.d/*.yaml file (apiVersion ${API_VERSION}).`,
    oneOf: oneOf.map(({ $schema: _drop, ...rest }) => rest),
  }
}
