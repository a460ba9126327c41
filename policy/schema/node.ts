// Node: a host of the mesh and where its HBONE listener is reached (ztunnel's workload→node).
import { z } from 'zod'
import { documentSchema, clusterMetadata, dualStackAddresses, port } from './common.ts'

export const NodeSchema = documentSchema('Node', clusterMetadata, z.strictObject({
  addresses: dualStackAddresses.min(1),
  hbonePort: port.default(15008),
}))
