// Plaintext carries no identity: a workload in STRICT mode takes mTLS only, and a connection
// without a verified peer is refused (UAEX). An HBONE stream always has one.
import type { InboundConnection } from '../inbound-connection.ts'

export async function strict(x: InboundConnection, next: () => Promise<void>): Promise<void> {
  const { conn } = x.to!
  if (conn.peer === undefined && conn.workload.mtlsMode === 'STRICT') return x.entry.refuse({ kind: 'strict' })
  await next()
}
