// How the source host reaches an endpoint, for both paths (daemon/l4 per connection,
// daemon/l7 per pooled upstream connection): an HBONE tunnel as the source workload for a
// mesh workload, plain TCP for an endpoint outside the mesh.
import { isIP } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Endpoint, WorkloadInfo } from '../../policy/snapshot.ts'
import type { HboneClientPool } from '../tunnel/client-pool.ts'
import { dialTcp } from './dial.ts'

/**
 * Connects to an endpoint as `source`: through HBONE for a mesh workload, plain TCP otherwise.
 * The workload and node addresses of `family` are used when they exist, so an IPv6 connection
 * stays IPv6 end to end.
 */
export function connectEndpoint(pool: HboneClientPool, source: WorkloadInfo, ep: Endpoint, service: string, timeoutMs: number, w: WorkloadInfo | undefined, family: 4 | 6 = 4): Promise<Duplex> {
  const sameFamily = (list: readonly string[] | undefined, fallback: string): string => list?.find((a) => isIP(a) === family) ?? fallback
  if (ep.identity && ep.node) {
    return pool.open({
      source: source.identity, destination: ep.identity,
      node: { address: sameFamily(ep.node.addresses, ep.node.addresses[0]!), port: ep.node.hbonePort },
      address: sameFamily(w?.addresses, ep.address), port: ep.port,
      baggage: `k8s.namespace.name=${source.namespace},k8s.workload.name=${source.name}`,
      sourceWorkload: source.key,
      destinationService: service,
      timeoutMs,
    })
  }
  return dialTcp(ep.address, ep.port, timeoutMs)
}
