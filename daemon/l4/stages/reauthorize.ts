// The policy may have changed while connecting: decide again with the snapshot in force (the
// same check a snapshot swap runs on open connections, authz/recheck.ts). A connection that
// opened during a swap is not yet kept where that re-check looks, so it is decided here.
import type { Stage } from '../../../base/stage.ts'
import type { Snapshot } from '../../../policy/snapshot.ts'
import { stillAllowed } from '../../authz/recheck.ts'
import type { InboundConnection } from '../inbound-connection.ts'

export function reauthorize(snapshot: () => Snapshot | undefined): Stage<InboundConnection> {
  return async (x, next) => {
    const { conn, protocol } = x.to!
    const now = snapshot()
    const again = now ? stillAllowed(now, { peer: conn.peer, workload: conn.workload, port: conn.port, protocol }) : { allowed: false as const, reason: 'no policy' }
    if (!again.allowed) {
      x.release?.()
      x.upstream!.destroy()
      return x.entry.refuse({ kind: 'denied', reason: again.reason })
    }
    await next()
  }
}
