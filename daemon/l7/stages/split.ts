// Weighted backendRefs, chosen per request (not per connection): the rule's, or a TCPRoute's
// attached to the port, or the port itself. A rule whose backends are all invalid or weight 0
// answers 500, as Gateway API asks.
import { defaultDestination } from '../../../policy/compile.ts'
import type { ServicePortInfo, Snapshot, WeightedBackends } from '../../../policy/snapshot.ts'
import type { Exchange, Target } from '../exchange.ts'
import { reply } from '../exchange.ts'
import type { OutboundConn } from '../outbound-conn.ts'

export async function split(x: Exchange<OutboundConn>, next: () => Promise<void>): Promise<void> {
  const sp = x.snapshot.servicePorts.get(x.conn.servicePort)!
  let port: ServicePortInfo | undefined = sp
  if (x.rule) {
    port = pick(x.snapshot, x.rule.backends)
    if (!port) return reply(x, { status: 500, message: 'the route rule has no valid backends' })
  } else if (sp.route?.kind === 'tcp' && sp.route.backends.total > 0) {
    port = pick(x.snapshot, sp.route.backends) ?? sp
  }
  x.target = targetOf(x.snapshot, port)
  x.record.update({ dst: { service: x.target.service } })
  await next()
}

function pick(snap: Snapshot, b: WeightedBackends): ServicePortInfo | undefined {
  if (b.total <= 0) return undefined
  const r = Math.random() * b.total
  let i = 0
  while (i < b.cumulative.length - 1 && b.cumulative[i]! <= r) i++
  return snap.servicePorts.get(b.backends[i]!.servicePort)
}

export function targetOf(snap: Snapshot, port: ServicePortInfo): Target {
  const service = snap.services.get(port.service)
  return {
    key: port.key,
    service: service ? `${service.name}.${service.namespace}` : port.service,
    endpoints: port.endpoints,
    settings: service?.destination ?? defaultDestination(),
  }
}
