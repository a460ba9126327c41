// AuthorizationPolicy for the connection, with the peer's verified identity (plaintext: none).
// An HTTP port's CONNECT is admitted when some rule could allow the peer; its requests are
// authorized one by one (l7/inbound.ts).
import { authorize as evaluate } from '../../authz/evaluate.ts'
import type { InboundConnection } from '../inbound-connection.ts'

export async function authorize(x: InboundConnection, next: () => Promise<void>): Promise<void> {
  const { snapshot, conn, protocol } = x.to!
  const decision = evaluate(snapshot.authorization.get(conn.workload.key), {
    ...(conn.peer !== undefined ? { identity: conn.peer } : {}),
    port: conn.port,
    ...(protocol !== 'tcp' ? { stage: 'connect' as const } : {}),
  })
  if (!decision.allowed) return x.entry.refuse({ kind: 'denied', reason: decision.reason })
  await next()
}
