// L7 AuthorizationPolicy, per request, with the request as it arrived here (after the source's
// rewrites): methods, paths, hosts and their not- forms, as Istio. A denial is 403
// "RBAC: access denied" with flag UAEX, and the connection stays open for allowed requests.
import { authorize as evaluate } from '../../authz/evaluate.ts'
import type { Exchange } from '../exchange.ts'
import { reply } from '../exchange.ts'
import type { InboundConn } from '../inbound-conn.ts'

export async function authorize(x: Exchange<InboundConn>, next: () => Promise<void>): Promise<void> {
  const c = x.conn
  const w = x.snapshot.workloads.get(c.workload.key)
  if (!w || w.node !== x.snapshot.localNode) return reply(x, { status: 503, flag: 'NR', message: `${c.workload.key} is no longer a local workload` })
  const d = evaluate(x.snapshot.authorization.get(w.key), {
    ...(c.peer !== undefined ? { identity: c.peer } : {}),
    port: c.port, method: x.method, path: x.path, host: x.authority,
  })
  if (!d.allowed) {
    x.error = d.reason
    return reply(x, { status: 403, flag: 'UAEX', message: 'RBAC: access denied' })
  }
  await next()
}
