// An endpoint of the target by the DestinationPolicy's load balancer (skipping ejected
// endpoints and those already tried), connected as the source workload: an HBONE tunnel to a
// mesh workload, plain TCP to an endpoint outside the mesh. A failed connect tries another, up
// to MAX_CONNECT_ATTEMPTS; the destination's 401 is a denial (UAEX), anything else UF.
import { isIP } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Stage } from '../../../base/stage.ts'
import type { Endpoint } from '../../../policy/snapshot.ts'
import type { Balancer } from '../../balance/balancer.ts'
import { connectEndpoint } from '../../net/connect-endpoint.ts'
import type { ConnectionRecord } from '../../telemetry/connection.ts'
import { formatAuthority } from '../../tunnel/authority.ts'
import { TunnelError, type HboneClientPool } from '../../tunnel/client-pool.ts'
import type { OutboundConnection } from '../outbound-connection.ts'

/** Endpoints tried per connection before giving up. */
export const MAX_CONNECT_ATTEMPTS = 3

export function endpoint(balancer: Balancer, pool: HboneClientPool): Stage<OutboundConnection> {
  return async (x, next) => {
    const { socket, record } = x
    const snap = x.snapshot!
    const target = x.target!
    const dst = x.dst!
    const settings = target.settings
    // The workload and node addresses of the original destination's family are used when
    // they exist, so an IPv6 connection stays IPv6 end to end.
    const family = isIP(dst.address) === 6 && !/^::ffff:/i.test(dst.address) ? 6 : 4
    const tried = new Set<Endpoint>()
    record.update({ dst: { service: target.service } })
    let last: { flag: 'UF' | 'UAEX'; error: string } = { flag: 'UF', error: 'no endpoint reachable: no endpoints' }
    let denier: Parameters<ConnectionRecord['update']>[0] | undefined
    for (let attempt = 0; attempt < MAX_CONNECT_ATTEMPTS; attempt++) {
      if (socket.destroyed) return record.refuse('DC', 'the client closed the connection before it was connected')
      const ep = balancer.pick(target.key, target.endpoints, settings, tried)
      if (!ep) break
      tried.add(ep)
      const dstWorkload = ep.workload ? snap.workloads.get(ep.workload) : undefined
      const facts = {
        dst: { ...(dstWorkload ? { workload: dstWorkload } : {}), ...(ep.identity ? { principal: ep.identity } : {}) },
        upstream: formatAuthority(ep.address, ep.port),
        security: ep.identity ? 'mutual_tls' as const : 'none' as const,
      }
      record.update(facts)
      const started = Date.now()
      let upstream: Duplex
      try {
        upstream = await connectEndpoint(pool, x.source, ep, target.service, settings.connectionPool.connectTimeoutMs, dstWorkload, family)
      } catch (err) {
        const message = (err as Error).message
        // A refusal by the destination's policy (401) or a bad request (400) says nothing
        // about the endpoint's health; a connect failure or 503 does. A local problem (no
        // certificate for the source yet) says nothing about the endpoint either.
        const status = err instanceof TunnelError ? err.status : undefined
        const local = (err as { code?: string }).code === 'HOSTMESH_ERR_CERT_UNAVAILABLE'
        if (status !== 401 && status !== 400 && !local) balancer.failure(ep, target.key, target.endpoints, settings)
        // 401 is the destination's AuthorizationPolicy answering: a denial, not an upstream
        // failure, and it stays the outcome even if another endpoint then fails otherwise.
        if (status === 401) {
          last = { flag: 'UAEX', error: `denied by the destination's AuthorizationPolicy: ${message}` }
          denier = facts
        } else if (last.flag !== 'UAEX') last = { flag: 'UF', error: `no endpoint reachable: ${message}` }
        x.log.debug({ workload: x.source.key, endpoint: formatAuthority(ep.address, ep.port), err: message }, status === 401 ? 'denied by the destination' : 'endpoint failed; trying another')
        continue
      }
      balancer.success(ep, Date.now() - started)
      if (socket.destroyed) {
        upstream.destroy()
        return record.refuse('DC', 'the client closed the connection before it was connected')
      }
      const end = balancer.begin(ep, target.key)
      upstream.once('close', end)
      x.upstream = upstream
      return next()
    }
    // The record names the endpoint whose answer decided: the one that denied, if one did.
    if (denier) record.update(denier)
    record.refuse(last.flag, last.error)
    socket.resetAndDestroy()
  }
}
