// Weighted backendRefs, chosen per request (not per connection): the rule's, or a TCPRoute's
// attached to the port, or the port itself. A rule whose backends are all invalid or weight 0
// answers 500, as Gateway API asks.
import type { ServicePortInfo } from '../../../policy/snapshot.ts'
import { pickWeighted, targetOf } from '../../balance/target.ts'
import type { Exchange } from '../exchange.ts'
import { reply } from '../exchange.ts'
import type { OutboundConn } from '../outbound-conn.ts'

export async function split(x: Exchange<OutboundConn>, next: () => Promise<void>): Promise<void> {
  const sp = x.snapshot.servicePorts.get(x.conn.servicePort)!
  let port: ServicePortInfo | undefined = sp
  if (x.rule) {
    port = pickWeighted(x.snapshot, x.rule.backends)
    if (!port) return reply(x, { status: 500, message: 'the route rule has no valid backends' })
  } else if (sp.route?.kind === 'tcp' && sp.route.backends.total > 0) {
    port = pickWeighted(x.snapshot, sp.route.backends) ?? sp
  }
  x.target = targetOf(x.snapshot, port)
  x.record.update({ dst: { service: x.target.service } })
  await next()
}
