// HTTPRoute matching, per request. The rules arrive sorted by Gateway API precedence (compile.ts),
// so the first rule whose match holds wins. Everything that can be is done at compile time:
// regular expressions are anchored, header names lowercase, prefixes without their trailing
// "/". The query string is parsed only when a rule that tests query parameters is reached.
import type { CompiledHTTPRule, CompiledMatch, StringMatcher } from '../../policy/snapshot.ts'

export interface RouteRequest {
  readonly method: string
  /** The request path, without the query, as received (not decoded). */
  readonly path: string
  /** The raw query, without "?"; "" when there is none. */
  readonly query: string
  /**
   * The value of a header, by lowercase name; a repeated header as one comma-joined value
   * (RFC 9110 §5.3), as node gives most of them.
   */
  header(name: string): string | undefined
}

/** The first rule (in precedence order) whose match holds for `req`, or undefined (404, NR). */
export function matchRoute(rules: readonly CompiledHTTPRule[], req: RouteRequest): CompiledHTTPRule | undefined {
  let params: URLSearchParams | undefined
  for (const rule of rules) {
    const m = rule.match
    if (!pathMatches(m.path, req.path)) continue
    if (m.method !== undefined && m.method !== req.method) continue
    if (!headersMatch(m, req)) continue
    if (m.queryParams.length > 0) {
      params ??= parseQuery(req.query)
      if (!queryMatches(m, params)) continue
    }
    return rule
  }
  return undefined
}

export function pathMatches(p: CompiledMatch['path'], path: string): boolean {
  switch (p.type) {
    case 'Exact':
      return path === p.value
    case 'PathPrefix':
      return prefixMatches(p.value, path)
    case 'RegularExpression':
      return p.regex!.test(path)
  }
}

/**
 * Gateway API PathPrefix: whole path segments, so "/foo" matches "/foo", "/foo/" and
 * "/foo/bar" but not "/foobar". `prefix` has no trailing "/" unless it is "/", which matches
 * every path.
 */
export function prefixMatches(prefix: string, path: string): boolean {
  if (prefix === '/') return true
  return path.startsWith(prefix) && (path.length === prefix.length || path.charCodeAt(prefix.length) === 47 /* '/' */)
}

function headersMatch(m: CompiledMatch, req: RouteRequest): boolean {
  for (const h of m.headers) {
    const v = req.header(h.name)
    if (v === undefined || !valueMatches(h, v)) return false
  }
  return true
}

function queryMatches(m: CompiledMatch, params: URLSearchParams): boolean {
  for (const q of m.queryParams) {
    const v = params.get(q.name)
    if (v === null || !valueMatches(q, v)) return false
  }
  return true
}

function valueMatches(s: StringMatcher, value: string): boolean {
  return s.type === 'Exact' ? value === s.value : s.regex!.test(value)
}

/**
 * Query parameters as application/x-www-form-urlencoded (WHATWG URLSearchParams): names and
 * values percent-decoded, "+" is a space, a parameter without "=" has the value "". `get`
 * returns the first value of a repeated name, which is hostmesh's choice where Gateway API
 * leaves it to the implementation.
 */
export function parseQuery(query: string): URLSearchParams {
  // URLSearchParams drops one leading "?"; the query we get has lost its own already.
  return new URLSearchParams(query.charCodeAt(0) === 63 ? `?${query}` : query)
}
