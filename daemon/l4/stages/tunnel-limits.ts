// HBONE only: open tunnels in all and per peer host (tunnel/admission.ts); over a limit the
// entry answers 503 UO. The slot is held until the connection ends, or released when a later
// stage refuses it.
import type { InboundConnection } from '../inbound-connection.ts'

export async function tunnelLimits(x: InboundConnection, next: () => Promise<void>): Promise<void> {
  if (x.entry.tunnel) {
    const release = x.entry.tunnel()
    if (!release) return
    x.release = release
  }
  await next()
}
