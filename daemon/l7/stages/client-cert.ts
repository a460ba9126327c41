// x-forwarded-client-cert, Envoy's form: `By=<this workload's identity>;URI=<the peer's>`.
// Whatever the client sent under that name is removed first, so a workload can trust it:
// it names the verified peer, or it is absent (plaintext has no peer).
import type { Exchange } from '../exchange.ts'
import type { InboundConn } from '../inbound-conn.ts'

export async function clientCert(x: Exchange<InboundConn>, next: () => Promise<void>): Promise<void> {
  delete x.headers['x-forwarded-client-cert']
  if (x.conn.peer !== undefined) x.headers['x-forwarded-client-cert'] = `By=${x.conn.workload.identity};URI=${x.conn.peer}`
  await next()
}
