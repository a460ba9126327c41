// Source address check. A container's listener binds every address (it is reached through
// PREROUTING on a bridge address), so it takes only the container's own source address; a
// host process's listener binds loopback only, and there is nothing to check.
import { canonicalIp } from '../../../policy/ip.ts'
import { drop, type OutboundConnection } from '../outbound-connection.ts'

export async function fromWorkload(x: OutboundConnection, next: () => Promise<void>): Promise<void> {
  const w = x.source
  if (w.match.address !== undefined && canonicalIp(x.socket.remoteAddress ?? '') !== canonicalIp(w.match.address)) {
    x.log.warn({ workload: w.key, from: x.socket.remoteAddress }, 'outbound connection from an address that is not the workload\'s; closing')
    return drop(x, 'not from the workload\'s address')
  }
  await next()
}
