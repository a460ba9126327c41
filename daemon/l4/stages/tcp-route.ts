// The service port a tcp connection goes to: a TCPRoute's weighted backends (chosen once per
// connection), or the port itself. A workload dialled directly already has its target.
import { defaultDestination } from '../../../policy/compile.ts'
import type { ServicePortInfo, Snapshot } from '../../../policy/snapshot.ts'
import type { MeshTarget, OutboundConnection } from '../outbound-connection.ts'

export async function tcpRoute(x: OutboundConnection, next: () => Promise<void>): Promise<void> {
  const d = x.destination!
  if (d.kind === 'service') x.target = routeOf(x.snapshot!, d.port)
  await next()
}

function routeOf(snap: Snapshot, sp: ServicePortInfo): MeshTarget {
  let port = sp
  const route = sp.route
  if (route?.kind === 'tcp' && route.backends.total > 0) {
    const r = Math.random() * route.backends.total
    const i = route.backends.cumulative.findIndex((c) => c > r)
    port = snap.servicePorts.get(route.backends.backends[i]!.servicePort) ?? sp
  }
  const service = snap.services.get(port.service)
  return { key: port.key, service: service ? `${service.name}.${service.namespace}` : port.service, endpoints: port.endpoints, settings: service?.destination ?? defaultDestination() }
}
