// The connection is accepted (HBONE: 200 on the stream) and spliced to the workload both ways
// until either ends (tunnel/splice.ts). It is kept for policy re-checks while open; a revoked
// one is reset on both sides.
import { splice } from '../../tunnel/splice.ts'
import type { InboundConnection, KeptConnection } from '../inbound-connection.ts'

export function answer(x: InboundConnection): void {
  const { conn, record, protocol } = x.to!
  x.entry.accept()
  record.open()
  const kept: KeptConnection = { workload: conn.workload, port: conn.port, protocol, close: (reason) => joined.close(reason) }
  const joined = splice(x.entry.downstream, x.upstream!, (r) => {
    forget()
    x.release?.()
    record.close(r.aToB, r.bToA, r.error?.message)
  })
  const forget = x.entry.keep(kept)
}
