// HTTPRoute matching (Gateway API precedence, compiled into the rules' order): the first rule
// that matches wins; none: 404 with flag NR. A port without an HTTPRoute goes to its own
// endpoints (or its TCPRoute's weights, per request).
import type { Exchange } from '../exchange.ts'
import { reply } from '../exchange.ts'
import type { OutboundConn } from '../outbound-conn.ts'
import { matchRoute } from '../route-match.ts'

export async function route(x: Exchange<OutboundConn>, next: () => Promise<void>): Promise<void> {
  const sp = x.snapshot.servicePorts.get(x.conn.servicePort)
  if (!sp) return reply(x, { status: 404, flag: 'NR', message: `no route: ${x.conn.servicePort} is no longer in the policy` })
  const r = sp.route
  if (r?.kind === 'http') {
    const headers = x.headers
    const rule = matchRoute(r.rules, {
      method: x.method, path: x.path, query: x.query,
      header: (name) => {
        const v = name === 'host' ? x.authority : headers[name]
        return Array.isArray(v) ? v.join(',') : v
      },
    })
    if (!rule) return reply(x, { status: 404, flag: 'NR', message: 'no route matched' })
    x.rule = rule
    x.record.update({ route: rule.route, rule: rule.rule, ...(rule.name !== undefined ? { ruleName: rule.name } : {}) })
  }
  await next()
}
