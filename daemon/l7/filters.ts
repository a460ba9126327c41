// Gateway API HTTPRoute filters as pure functions: header modifiers, URL rewrite and request
// redirect. The stages (stages/filters.ts, forward.ts) decide when each applies.
import type { CompiledHTTPRule, HeaderModifier, HTTPPathModifier, HTTPRequestRedirect } from '../../policy/snapshot.ts'

/** A plain header object with lowercase names, as node's IncomingHttpHeaders. */
export type HeaderFields = Record<string, string | string[] | undefined>

/**
 * RequestHeaderModifier / ResponseHeaderModifier, in place. Envoy's order: `remove`, then
 * `set` (replaces every value), then `add` (appends to what is there). A string value gets
 * ",value" appended, the form Gateway API's conformance tests expect; a list (set-cookie, or
 * a header node kept as separate lines) gets a new entry, since set-cookie cannot be joined.
 * Names in `mod` are lowercase (the schema lowercases them).
 */
export function applyHeaderModifier(mod: HeaderModifier, headers: HeaderFields): void {
  for (const name of mod.remove) delete headers[name]
  for (const { name, value } of mod.set) headers[name] = value
  for (const { name, value } of mod.add) {
    const cur = headers[name]
    if (cur === undefined) headers[name] = value
    // A new array: the old one may be shared with the incoming message.
    else if (Array.isArray(cur)) headers[name] = [...cur, value]
    else if (name === 'set-cookie') headers[name] = [cur, value]
    else headers[name] = `${cur},${value}`
  }
}

/**
 * Gateway API HTTPPathModifier. ReplaceFullPath: the new path. ReplacePrefixMatch: the
 * matched prefix, on whole segments, is replaced; a trailing "/" of the prefix or of the
 * replacement is ignored, and the result is never "" nor starts with "//":
 * "/foo" → "/xyz" turns "/foo/bar" into "/xyz/bar", "/foo" into "/xyz", "/foo/" into "/xyz/";
 * "/foo" → "/" (or "") turns "/foo/bar" into "/bar" and "/foo" into "/".
 * `matchedPrefix` is the rule's PathPrefix value; absent means "/" (Gateway API's default).
 */
export function rewritePath(mod: HTTPPathModifier, path: string, matchedPrefix = '/'): string {
  if (mod.type === 'ReplaceFullPath') return mod.value
  const prefix = trimSlashes(matchedPrefix)
  // Not a match on segment boundaries: nothing to replace (route-match never lets this happen).
  if (!path.startsWith(prefix) || (path.length > prefix.length && path.charCodeAt(prefix.length) !== 47)) return path
  const rest = path.slice(prefix.length)
  const replacement = trimSlashes(mod.value)
  return rest === '' ? replacement || '/' : replacement + rest
}

/**
 * URLRewrite for the upstream request: the new path (the caller keeps the query string) and
 * the new authority. Gateway API's hostname replaces the whole Host / :authority, port
 * included, as Envoy's host rewrite does. The matched prefix is the rule's own (one compiled
 * rule per match; validation allows ReplacePrefixMatch only with one PathPrefix match).
 */
export function rewriteUrl(rule: Pick<CompiledHTTPRule, 'urlRewrite' | 'match'>, path: string, authority: string): { path: string; authority: string } {
  const rw = rule.urlRewrite
  if (!rw) return { path, authority }
  return {
    path: rw.path ? rewritePath(rw.path, path, prefixOf(rule)) : path,
    authority: rw.hostname ?? authority,
  }
}

/** The rule's PathPrefix value, for ReplacePrefixMatch; undefined for other path types. */
export function prefixOf(rule: Pick<CompiledHTTPRule, 'match'>): string | undefined {
  return rule.match.path.type === 'PathPrefix' ? rule.match.path.value : undefined
}

export interface RedirectRequest {
  readonly scheme: 'http' | 'https'
  /** The request's host, without the port (an IPv6 address in brackets, as in the authority). */
  readonly host: string
  /** The port the request was addressed to; absent means the scheme's well-known port. */
  readonly port?: number
  /** Without the query. */
  readonly path: string
  /** Raw, without "?"; "" when there is none. */
  readonly query: string
}

const WELL_KNOWN: Readonly<Record<'http' | 'https', number>> = { http: 80, https: 443 }

/**
 * RequestRedirect's status and Location (Gateway API HTTPRequestRedirectFilter). Unset fields
 * keep the request's value. The port, when unset: the new scheme's well-known port if the
 * filter sets a scheme, else the port the request came to. Location leaves the port out when
 * it is the scheme's well-known one (80 for http, 443 for https). The query string is kept.
 */
export function redirectLocation(redirect: HTTPRequestRedirect, req: RedirectRequest, matchedPrefix?: string): { status: 301 | 302; location: string } {
  const scheme = redirect.scheme ?? req.scheme
  const port = redirect.port ?? (redirect.scheme !== undefined ? WELL_KNOWN[redirect.scheme] : req.port ?? WELL_KNOWN[req.scheme])
  const path = redirect.path ? rewritePath(redirect.path, req.path, matchedPrefix) : req.path
  const authority = port === WELL_KNOWN[scheme] ? (redirect.hostname ?? req.host) : `${redirect.hostname ?? req.host}:${port}`
  return { status: redirect.statusCode, location: `${scheme}://${authority}${path}${req.query === '' ? '' : `?${req.query}`}` }
}

/** Trailing slashes off; "/" becomes "" so that "" + rest never doubles a slash. */
function trimSlashes(p: string): string {
  let end = p.length
  while (end > 0 && p.charCodeAt(end - 1) === 47) end--
  return end === p.length ? p : p.slice(0, end)
}
