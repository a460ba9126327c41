// Workload: a process or container on one node (Istio WorkloadEntry + PeerAuthentication).
// Its identity is spiffe://<trustDomain>/ns/<metadata.namespace>/sa/<spec.serviceAccount>.
import { z } from 'zod'
import { documentSchema, dnsLabel, dnsName, dualStackAddresses, ipAddress, namespacedMetadata, port } from './common.ts'

export const WorkloadSchema = documentSchema('Workload', namespacedMetadata, z.strictObject({
  node: dnsName,
  serviceAccount: dnsLabel.default('default'),
  // How its outbound traffic is recognised: a host process by uid, a container on a bridge
  // by source address. Exactly one.
  match: z.strictObject({
    uid: z.number().int().min(0).max(4294967294).optional(),
    address: ipAddress.optional(),
  }).refine((m) => (m.uid === undefined) !== (m.address === undefined), {
    message: 'expected exactly one of match.uid (a host process) or match.address (a container by source address)',
  }),
  // Where the workload is reached. Default: match.address, else the node's addresses.
  addresses: dualStackAddresses.optional(),
  ports: z.array(z.strictObject({ name: dnsLabel.optional(), port })).max(64).default([]),
  mtls: z.strictObject({ mode: z.enum(['STRICT', 'PERMISSIVE']).default('STRICT') }).prefault({}),
}))
