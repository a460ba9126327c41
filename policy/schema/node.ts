// Node: a host of the mesh and where its HBONE listener is reached (ztunnel's workload→node).
import { z } from 'zod'
import { API_VERSION, clusterMetadata, dualStackAddresses, port } from './common.ts'

export const NodeSchema = z.strictObject({
  apiVersion: z.literal(API_VERSION),
  kind: z.literal('Node'),
  metadata: clusterMetadata,
  spec: z.strictObject({
    addresses: dualStackAddresses.min(1),
    hbonePort: port.default(15008),
  }),
})
