// The endpoint for this request, by the DestinationPolicy's load balancer in request mode
// (P2C over peak-EWMA of request latency by default, Linkerd's), skipping ejected endpoints
// and those this request already tried while others are left. None: 503 with flag UH (no healthy upstream).
import type { Balancer } from '../../balance/balancer.ts'
import type { Exchange } from '../exchange.ts'
import { reply } from '../exchange.ts'
import type { Stage } from '../../../base/stage.ts'
import { versionField } from '../../telemetry/request.ts'

export function endpoint<C>(balancer: Balancer): Stage<Exchange<C>> {
  return async (x, next) => {
    const t = x.target!
    // A retry goes to an endpoint not tried yet when one is left, else to any.
    const ep = balancer.pick(t.key, t.endpoints, t.settings, x.tried, 'request')
      ?? (x.tried.size > 0 ? balancer.pick(t.key, t.endpoints, t.settings, undefined, 'request') : undefined)
    if (!ep) return reply(x, { status: 503, flag: 'UH', message: 'no healthy upstream' })
    x.tried.add(ep)
    x.endpoint = ep
    const w = ep.workload ? x.snapshot.workloads.get(ep.workload) : undefined
    x.record.update({
      dst: { ...(w ? { workload: w, ...versionField(w.labels) } : {}), ...(ep.identity ? { principal: ep.identity } : {}) },
      security: ep.identity ? 'mutual_tls' : 'none',
    })
    await next()
  }
}
