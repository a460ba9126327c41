// Header modifiers, URL rewrite and request redirect, checked against Gateway API's own tables
// (HTTPPathModifier's ReplacePrefixMatch table) and the expectations of its conformance tests
// (HTTPRouteRewritePath, HTTPRouteRewriteHost, HTTPRouteRedirectPath,
// HTTPRouteRedirectPortAndScheme, HTTPRouteRedirectHostAndStatus).
import t from 'tap'
import { applyHeaderModifier, prefixOf, redirectLocation, rewritePath, rewriteUrl, type HeaderFields, type RedirectRequest } from '../../../daemon/l7/filters.ts'
import { matchRoute } from '../../../daemon/l7/route-match.ts'
import type { HeaderModifier, HTTPRequestRedirect } from '../../../policy/snapshot.ts'
import { compileRoutes, httpRoute } from './routes.ts'

const mod = (m: Partial<HeaderModifier>): HeaderModifier => ({ set: [], add: [], remove: [], ...m })

t.test('header modifier: the HTTPRouteRewritePath conformance case', async (t) => {
  const rules = compileRoutes(httpRoute('r', `    - filters:
        - type: RequestHeaderModifier
          requestHeaderModifier:
            set: [{name: X-Header-Set, value: set-overwrites-values}]
            add: [{name: X-Header-Add, value: header-val-1}, {name: X-Header-Add-Append, value: header-val-2}]
            remove: [X-Header-Remove]
      backendRefs: [{name: v1, port: 80}]
`))
  const h: HeaderFields = { 'x-header-remove': 'remove-val', 'x-header-add-append': 'append-val-1', 'x-header-set': 'set-val', other: 'kept' }
  applyHeaderModifier(rules[0]!.requestHeaders!, h)
  t.same(h, {
    'x-header-add': 'header-val-1',
    'x-header-add-append': 'append-val-1,header-val-2',
    'x-header-set': 'set-overwrites-values',
    other: 'kept',
  })
})

t.test('header modifier: set replaces every value, add appends, remove deletes', async (t) => {
  const shared = ['a=1', 'b=2']
  const h: HeaderFields = { 'set-cookie': shared, 'x-list': ['1', '2'], 'x-set': ['old1', 'old2'], 'x-gone': undefined }
  applyHeaderModifier(mod({
    set: [{ name: 'x-set', value: 'new' }, { name: 'x-fresh', value: 'f' }],
    add: [{ name: 'set-cookie', value: 'c=3' }, { name: 'x-list', value: '3' }, { name: 'x-new', value: 'n' }, { name: 'x-new', value: 'm' }],
  }), h)
  t.same(h['x-set'], 'new', 'set replaces a repeated header with one value')
  t.same(h['x-fresh'], 'f', 'set adds an absent header')
  t.same(h['set-cookie'], ['a=1', 'b=2', 'c=3'], 'a list gets a new entry')
  t.same(shared, ['a=1', 'b=2'], 'the original list is not changed (it may belong to the incoming message)')
  t.same(h['x-list'], ['1', '2', '3'])
  t.same(h['x-new'], 'n,m', 'two adds of an absent header: the first sets, the second appends')

  const cookie: HeaderFields = { 'set-cookie': 'a=1' }
  applyHeaderModifier(mod({ add: [{ name: 'set-cookie', value: 'b=2' }] }), cookie)
  t.same(cookie['set-cookie'], ['a=1', 'b=2'], 'set-cookie is never comma-joined')

  const order: HeaderFields = { 'x-a': 'old' }
  applyHeaderModifier(mod({ remove: ['x-a', 'x-b'], set: [{ name: 'x-a', value: 'set' }], add: [{ name: 'x-a', value: 'added' }] }), order)
  t.same(order, { 'x-a': 'set,added' }, 'Envoy\'s order: remove, then set, then add; removing an absent header is fine')
})

t.test('ReplacePrefixMatch: Gateway API\'s HTTPPathModifier table', async (t) => {
  const table: [string, string, string, string][] = [
    // request path, prefix match, replace prefix, modified path
    ['/foo/bar', '/foo', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo', '/xyz/', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz', '/xyz/bar'],
    ['/foo/bar', '/foo/', '/xyz/', '/xyz/bar'],
    ['/foo', '/foo', '/xyz', '/xyz'],
    ['/foo/', '/foo', '/xyz', '/xyz/'],
    ['/foo/bar', '/foo', '', '/bar'],
    ['/foo/', '/foo', '', '/'],
    ['/foo', '/foo', '', '/'],
    ['/foo/', '/foo', '/', '/'],
    ['/foo', '/foo', '/', '/'],
  ]
  for (const [path, prefix, value, want] of table) {
    t.equal(rewritePath({ type: 'ReplacePrefixMatch', value }, path, prefix), want, `${path} with ${prefix} → ${JSON.stringify(value)}: ${want}`)
  }
})

t.test('ReplacePrefixMatch: the prefix "/", and never a "//"', async (t) => {
  const p = (value: string, path: string, prefix?: string): string => rewritePath({ type: 'ReplacePrefixMatch', value }, path, prefix)
  t.equal(p('/v2', '/some/path', '/'), '/v2/some/path')
  t.equal(p('/v2', '/some/path'), '/v2/some/path', 'no prefix given: "/" (Gateway API\'s default match)')
  t.equal(p('/v2/', '/a'), '/v2/a')
  t.equal(p('/', '/a/b', '/'), '/a/b')
  t.equal(p('/v2', '/', '/'), '/v2/', 'the trailing "/" of the request is kept')
  t.equal(p('/', '/', '/'), '/')
  t.equal(p('/x', '/a//b', '/a'), '/x//b', 'the rest of the path is kept byte for byte')
  t.equal(p('/x', '/ab', '/a'), '/ab', 'not a segment match: unchanged')
  t.equal(p('/x', '/b', '/a'), '/b', 'not a match at all: unchanged')
  for (const [path, prefix, value] of [['/a', '/a', '/'], ['/a/', '/a', '/'], ['/a/b', '/a', '/'], ['/', '/', ''], ['/a', '/a/', '//']] as const) {
    const got = p(value, path, prefix)
    t.notOk(got.startsWith('//') || got === '', `${path} with ${prefix} → ${JSON.stringify(value)} gives ${got}`)
  }
  t.equal(rewritePath({ type: 'ReplaceFullPath', value: '/one' }, '/full/one/two', '/full/one'), '/one', 'ReplaceFullPath ignores the prefix')
})

t.test('URLRewrite: HTTPRouteRewritePath and HTTPRouteRewriteHost (conformance)', async (t) => {
  const rules = compileRoutes(httpRoute('rewrite-path', [
    '    - matches: [{path: {type: PathPrefix, value: /prefix/one}}]\n      filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /one}}}]\n      backendRefs: [{name: v1, port: 80}]\n',
    '    - matches: [{path: {type: PathPrefix, value: /strip-prefix}}]\n      filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /}}}]\n      backendRefs: [{name: v1, port: 80}]\n',
    '    - matches: [{path: {type: PathPrefix, value: /full/one}}]\n      filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplaceFullPath, replaceFullPath: /one}}}]\n      backendRefs: [{name: v1, port: 80}]\n',
    '    - matches: [{path: {type: PathPrefix, value: /prefix/rewrite-path-and-modify-headers}}]\n      filters: [{type: URLRewrite, urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /prefix}}}]\n      backendRefs: [{name: v1, port: 80}]\n',
    '    - matches: [{path: {type: PathPrefix, value: /one}}]\n      filters: [{type: URLRewrite, urlRewrite: {hostname: one.example.org}}]\n      backendRefs: [{name: v1, port: 80}]\n',
    '    - filters: [{type: URLRewrite, urlRewrite: {hostname: example.org, path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}}}]\n      backendRefs: [{name: v1, port: 80}]\n',
  ].join('')))
  const send = (path: string, authority = 'web.ns:80'): { path: string; authority: string } => {
    const rule = matchRoute(rules, { method: 'GET', path, query: '', header: () => undefined })!
    return rewriteUrl(rule, path, authority)
  }
  t.same(send('/prefix/one/two'), { path: '/one/two', authority: 'web.ns:80' })
  t.same(send('/strip-prefix/three'), { path: '/three', authority: 'web.ns:80' })
  t.same(send('/strip-prefix'), { path: '/', authority: 'web.ns:80' })
  t.same(send('/full/one/two'), { path: '/one', authority: 'web.ns:80' })
  t.same(send('/prefix/rewrite-path-and-modify-headers/one'), { path: '/prefix/one', authority: 'web.ns:80' })
  t.same(send('/one', 'rewrite.example'), { path: '/one', authority: 'one.example.org' }, 'hostname replaces the whole authority, port included')
  t.same(send('/two', 'x:8080'), { path: '/new/two', authority: 'example.org' }, 'no matches: the prefix "/"')
  t.same(rewriteUrl({ match: rules[0]!.match }, '/keep', 'a:1'), { path: '/keep', authority: 'a:1' }, 'no URLRewrite: unchanged')
  t.equal(prefixOf(rules.find((r) => r.match.path.value === '/full/one')!), '/full/one')
})

const http80 = (path: string, query = ''): RedirectRequest => ({ scheme: 'http', host: 'gw.example', path, query })

t.test('RequestRedirect: HTTPRouteRedirectPath (conformance)', async (t) => {
  const rules = compileRoutes(httpRoute('redirect-path', [
    ['/original-prefix', '{path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}'],
    ['/full', '{path: {type: ReplaceFullPath, replaceFullPath: /full-path-replacement}}'],
    ['/path-and-host', '{hostname: example.org, path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}}'],
    ['/path-and-status', '{path: {type: ReplacePrefixMatch, replacePrefixMatch: /replacement-prefix}, statusCode: 301}'],
    ['/full-path-and-host', '{hostname: example.org, path: {type: ReplaceFullPath, replaceFullPath: /replacement-full}}'],
    ['/full-path-and-status', '{path: {type: ReplaceFullPath, replaceFullPath: /replacement-full}, statusCode: 301}'],
  ].map(([prefix, r]) => `    - matches: [{path: {type: PathPrefix, value: ${prefix}}}]\n      filters: [{type: RequestRedirect, requestRedirect: ${r}}]\n`).join('')))
  const go = (path: string, query = ''): { status: number; location: string } => {
    const rule = matchRoute(rules, { method: 'GET', path, query, header: () => undefined })!
    t.equal(rule.backends.backends.length, 0, 'a redirect rule has no backends')
    return redirectLocation(rule.redirect!, http80(path, query), prefixOf(rule))
  }
  t.same(go('/original-prefix/lemon'), { status: 302, location: 'http://gw.example/replacement-prefix/lemon' })
  t.same(go('/full/path/original'), { status: 302, location: 'http://gw.example/full-path-replacement' })
  t.same(go('/path-and-host'), { status: 302, location: 'http://example.org/replacement-prefix' })
  t.same(go('/path-and-status'), { status: 301, location: 'http://gw.example/replacement-prefix' })
  t.same(go('/full-path-and-host'), { status: 302, location: 'http://example.org/replacement-full' })
  t.same(go('/full-path-and-status'), { status: 301, location: 'http://gw.example/replacement-full' })
  t.same(go('/original-prefix/lemon', 'a=1&b=%20'), { status: 302, location: 'http://gw.example/replacement-prefix/lemon?a=1&b=%20' }, 'the query string is kept')
})

t.test('RequestRedirect: HTTPRouteRedirectPortAndScheme (conformance)', async (t) => {
  const r = (fields: Omit<HTTPRequestRedirect, 'statusCode'>): HTTPRequestRedirect => ({ hostname: 'example.org', statusCode: 302, ...fields })
  const filters: Record<string, HTTPRequestRedirect> = {
    'scheme-nil-and-port-nil': r({}),
    'scheme-nil-and-port-80': r({ port: 80 }),
    'scheme-nil-and-port-443': r({ port: 443 }),
    'scheme-nil-and-port-8080': r({ port: 8080 }),
    'scheme-nil-and-port-8443': r({ port: 8443 }),
    'scheme-https-and-port-nil': r({ scheme: 'https' }),
    'scheme-https-and-port-443': r({ scheme: 'https', port: 443 }),
    'scheme-https-and-port-8443': r({ scheme: 'https', port: 8443 }),
    'scheme-http-and-port-nil': r({ scheme: 'http' }),
    'scheme-http-and-port-80': r({ scheme: 'http', port: 80 }),
    'scheme-http-and-port-8080': r({ scheme: 'http', port: 8080 }),
  }
  const listeners: { name: string; req: Omit<RedirectRequest, 'path' | 'query'>; cases: [string, string][] }[] = [
    { name: 'http on 80', req: { scheme: 'http', host: 'gw.example' }, cases: [
      ['scheme-nil-and-port-nil', 'http://example.org/scheme-nil-and-port-nil'],
      ['scheme-nil-and-port-80', 'http://example.org/scheme-nil-and-port-80'],
      ['scheme-nil-and-port-8080', 'http://example.org:8080/scheme-nil-and-port-8080'],
      ['scheme-https-and-port-nil', 'https://example.org/scheme-https-and-port-nil'],
      ['scheme-https-and-port-443', 'https://example.org/scheme-https-and-port-443'],
      ['scheme-https-and-port-8443', 'https://example.org:8443/scheme-https-and-port-8443'],
    ] },
    { name: 'http on 8080', req: { scheme: 'http', host: 'gw.example', port: 8080 }, cases: [
      ['scheme-nil-and-port-nil', 'http://example.org:8080/scheme-nil-and-port-nil'],
      ['scheme-nil-and-port-80', 'http://example.org/scheme-nil-and-port-80'],
      ['scheme-https-and-port-nil', 'https://example.org/scheme-https-and-port-nil'],
    ] },
    { name: 'https on 443', req: { scheme: 'https', host: 'example.org', port: 443 }, cases: [
      ['scheme-nil-and-port-nil', 'https://example.org/scheme-nil-and-port-nil'],
      ['scheme-nil-and-port-443', 'https://example.org/scheme-nil-and-port-443'],
      ['scheme-nil-and-port-8443', 'https://example.org:8443/scheme-nil-and-port-8443'],
      ['scheme-http-and-port-nil', 'http://example.org/scheme-http-and-port-nil'],
      ['scheme-http-and-port-80', 'http://example.org/scheme-http-and-port-80'],
      ['scheme-http-and-port-8080', 'http://example.org:8080/scheme-http-and-port-8080'],
    ] },
  ]
  for (const l of listeners) {
    for (const [path, want] of l.cases) {
      t.same(redirectLocation(filters[path]!, { ...l.req, path: `/${path}`, query: '' }), { status: 302, location: want }, `${l.name}: /${path}`)
    }
  }
})

t.test('RequestRedirect: host and status, scheme, defaults', async (t) => {
  t.same(redirectLocation({ hostname: 'example.org', statusCode: 301 }, http80('/hostname-redirect')), { status: 301, location: 'http://example.org/hostname-redirect' })
  t.same(redirectLocation({ statusCode: 302 }, http80('/same')), { status: 302, location: 'http://gw.example/same' }, 'an empty filter redirects to the same URL')
  t.same(redirectLocation({ scheme: 'https', statusCode: 301 }, { scheme: 'http', host: 'gw.example', port: 8080, path: '/p', query: 'x=1' }), { status: 301, location: 'https://gw.example/p?x=1' },
    'a scheme change uses the new scheme\'s port, not the request\'s')
  t.same(redirectLocation({ port: 8083, statusCode: 302 }, http80('/port')), { status: 302, location: 'http://gw.example:8083/port' })
  t.same(redirectLocation({ port: 443, statusCode: 302 }, http80('/p')), { status: 302, location: 'http://gw.example:443/p' }, '443 is shown for http')
  t.same(redirectLocation({ statusCode: 302 }, { scheme: 'http', host: '[fd00::1]', port: 8080, path: '/', query: '' }), { status: 302, location: 'http://[fd00::1]:8080/' }, 'an IPv6 host keeps its brackets')
  const rules = compileRoutes(httpRoute('r', '    - filters: [{type: RequestRedirect, requestRedirect: {scheme: https}}]\n'))
  t.same(rules[0]!.redirect, { scheme: 'https', statusCode: 302 }, 'compiled: only the fields given, and the default status')
  t.same(redirectLocation(rules[0]!.redirect!, http80('/x', 'q')), { status: 302, location: 'https://gw.example/x?q' })
})
