// Where the workload was connecting to before iptables redirected it here: SO_ORIGINAL_DST
// (IP6T_SO_ORIGINAL_DST for IPv6). A connection without one was never redirected by our rules.
import { originalDst as read } from '../../intercept/origdst.ts'
import { formatAuthority } from '../../tunnel/authority.ts'
import { drop, type OutboundConnection } from '../outbound-connection.ts'

export async function originalDst(x: OutboundConnection, next: () => Promise<void>): Promise<void> {
  let dst: { address: string; port: number }
  try {
    dst = read(x.socket)
  } catch (err) {
    x.log.warn({ workload: x.source.key, err: (err as Error).message }, 'outbound connection without an original destination; closing')
    return drop(x, `no original destination: ${(err as Error).message}`)
  }
  x.dst = dst
  x.dialled = formatAuthority(dst.address, dst.port)
  x.record.update({ dst: { address: x.dialled } })
  await next()
}
