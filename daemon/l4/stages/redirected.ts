// Not-redirected check: conntrack reports the listener's own address for a connection that was
// not redirected: someone dialled the capture port directly. It is not this workload's.
import { canonicalIp } from '../../../policy/ip.ts'
import { drop, type OutboundConnection } from '../outbound-connection.ts'

export async function redirected(x: OutboundConnection, next: () => Promise<void>): Promise<void> {
  const dst = x.dst!
  if (dst.port === x.capturePort && (canonicalIp(dst.address) === canonicalIp(x.socket.localAddress ?? ''))) {
    x.log.warn({ workload: x.source.key, from: x.socket.remoteAddress }, 'direct connection to an outbound capture port (not redirected); closing')
    return drop(x, 'a direct connection to the capture port')
  }
  await next()
}
