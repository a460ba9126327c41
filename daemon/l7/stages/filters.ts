// The matched rule's filters, in Gateway API's order of effect: RequestRedirect answers at
// once; RequestHeaderModifier and URLRewrite change what goes upstream (the query string is
// kept); ResponseHeaderModifier is applied when the response comes back (forward.ts).
import type { Exchange } from '../exchange.ts'
import { reply } from '../exchange.ts'
import { applyHeaderModifier, prefixOf, redirectLocation, rewriteUrl } from '../filters.ts'
import type { OutboundConn } from '../outbound-conn.ts'

export async function filters(x: Exchange<OutboundConn>, next: () => Promise<void>): Promise<void> {
  const rule = x.rule
  if (rule) {
    if (rule.redirect) {
      const { host, port } = splitHost(x.authority)
      const r = redirectLocation(rule.redirect, { scheme: 'http', host, ...(port !== undefined ? { port } : {}), path: x.path, query: x.query }, prefixOf(rule))
      return reply(x, { status: r.status, headers: { location: r.location } })
    }
    if (rule.requestHeaders) applyHeaderModifier(rule.requestHeaders, x.headers)
    if (rule.urlRewrite) {
      const rewritten = rewriteUrl(rule, x.path, x.authority)
      x.path = rewritten.path
      x.authority = rewritten.authority
    }
    if (rule.responseHeaders) x.responseModifier = rule.responseHeaders
  }
  await next()
}

function splitHost(authority: string): { host: string; port?: number } {
  const m = /^(\[[^\]]*\]|[^:]*)(?::(\d+))?$/.exec(authority)
  if (!m) return { host: authority }
  return m[2] !== undefined ? { host: m[1]!, port: Number(m[2]) } : { host: m[1]! }
}
