// A destination outside the mesh, as Istio's outboundTrafficPolicy says: REGISTRY_ONLY refuses
// it (NR); ALLOW_ANY connects to the original destination as plain TCP, for splice.
import type { Stage } from '../../../base/stage.ts'
import { dialTcp } from '../../net/dial.ts'
import { formatAuthority } from '../../tunnel/authority.ts'
import type { OutboundConnection } from '../outbound-connection.ts'

export function passthrough(policy: 'ALLOW_ANY' | 'REGISTRY_ONLY', connectTimeoutMs: number): Stage<OutboundConnection> {
  return async (x, next) => {
    const { socket, record } = x
    const dst = x.dst!
    // Istio's names for traffic outside the mesh: one series each, whatever the address.
    const registryOnly = policy === 'REGISTRY_ONLY'
    record.update({ dst: { service: registryOnly ? 'BlackHoleCluster' : 'PassthroughCluster' } })
    if (registryOnly) {
      record.refuse('NR', 'REGISTRY_ONLY: not a mesh service')
      return void socket.destroy()
    }
    // ALLOW_ANY: plain TCP from the daemon (its uid is never captured).
    record.update({ upstream: formatAuthority(dst.address, dst.port) })
    let upstream
    try {
      upstream = await dialTcp(dst.address, dst.port, connectTimeoutMs)
    } catch (err) {
      const e = err as NodeJS.ErrnoException
      record.refuse('UF', e.code ?? e.message)
      return void socket.resetAndDestroy()
    }
    if (socket.destroyed) {
      upstream.destroy()
      return record.refuse('DC', 'the client closed the connection before it was connected')
    }
    x.upstream = upstream
    await next()
  }
}
