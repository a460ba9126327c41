// The local workload the connection is for, as its entry names it: an HBONE stream's
// :authority (else 400), or a plaintext connection's original destination (else NR). The
// entry begins the connection's record here; the protocol the destination reads the port with
// decides between splice and the request path.
import type { Stage } from '../../../base/stage.ts'
import type { Snapshot } from '../../../policy/snapshot.ts'
import { protocolOf } from '../../authz/recheck.ts'
import type { InboundConnection } from '../inbound-connection.ts'

export function target(snapshot: () => Snapshot | undefined): Stage<InboundConnection> {
  return async (x, next) => {
    const t = x.entry.target(snapshot())
    if (!t) return
    x.to = { ...t, protocol: protocolOf(t.snapshot, t.conn.address, t.conn.port) }
    await next()
  }
}
