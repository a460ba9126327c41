// The service port a tcp connection goes to: a TCPRoute's weighted backends (chosen once per
// connection), or the port itself. A workload dialled directly already has its target.
import type { ServicePortInfo, Snapshot } from '../../../policy/snapshot.ts'
import { pickWeighted, targetOf, type Target } from '../../balance/target.ts'
import type { OutboundConnection } from '../outbound-connection.ts'

export async function tcpRoute(x: OutboundConnection, next: () => Promise<void>): Promise<void> {
  const d = x.destination!
  if (d.kind === 'service') x.target = routeOf(x.snapshot!, d.port)
  await next()
}

function routeOf(snap: Snapshot, sp: ServicePortInfo): Target {
  const route = sp.route
  const port = route?.kind === 'tcp' ? pickWeighted(snap, route.backends) ?? sp : sp
  return targetOf(snap, port)
}
