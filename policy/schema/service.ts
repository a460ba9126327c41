// Service: a name with virtual addresses and ports (Kubernetes Service). Endpoints come from
// Workloads chosen by label selector, or are explicit addresses outside the mesh.
import { z } from 'zod'
import { documentSchema, dnsLabel, ipAddress, labels, namespacedMetadata, port } from './common.ts'

export const SERVICE_PROTOCOLS = ['tcp', 'http', 'http2', 'grpc'] as const

export const ServicePortSchema = z.strictObject({
  name: dnsLabel.optional(),
  port,
  protocol: z.enum(SERVICE_PROTOCOLS).default('tcp'),
  // A number, or the name of a port of the selected Workloads. Default: the same as port.
  targetPort: z.union([port, dnsLabel], { error: 'expected a port number (1-65535) or a workload port name' }).optional(),
})

export const ServiceSchema = documentSchema('Service', namespacedMetadata, z.strictObject({
  // Virtual IPs: connections to these are captured and routed. None: reachable only as a
  // route backend.
  addresses: z.array(ipAddress).max(16).default([]),
  ports: z.array(ServicePortSchema).min(1).max(64),
  selector: labels.optional(),
  endpoints: z.array(z.strictObject({ address: ipAddress, port: port.optional() })).min(1).max(1024).optional(),
}).superRefine((spec, ctx) => {
  if ((spec.selector === undefined) === (spec.endpoints === undefined)) {
    ctx.addIssue({ code: 'custom', path: ['selector'], message: 'expected exactly one of selector (mesh workloads by label) or endpoints (explicit addresses outside the mesh)' })
  }
  if (spec.ports.length > 1) {
    spec.ports.forEach((p, i) => {
      if (!p.name) ctx.addIssue({ code: 'custom', path: ['ports', i, 'name'], message: 'a Service with several ports must name each of them' })
    })
  }
}))
