// HTTPRoute matching on rules compiled by the real policy pipeline: path, method, header and
// query matches, Gateway API precedence, and cases modelled on Gateway API's conformance tests
// (HTTPRoutePathMatchOrder, HTTPRouteHeaderMatching, HTTPRouteQueryParamMatching,
// HTTPRouteMethodMatching).
import t from 'tap'
import { matchRoute, parseQuery, pathMatches, prefixMatches, type RouteRequest } from '../../../daemon/l7/route-match.ts'
import { backendOf, compileRoutes, httpRoute } from './routes.ts'

/** A request as the route stage builds it; `target` is path and query as on the request line. */
function req(target: string, headers: Record<string, string> = {}, method = 'GET'): RouteRequest {
  const q = target.indexOf('?')
  const lower = new Map(Object.entries(headers).map(([k, v]) => [k.toLowerCase(), v]))
  return {
    method,
    path: q < 0 ? target : target.slice(0, q),
    query: q < 0 ? '' : target.slice(q + 1),
    header: (name) => lower.get(name),
  }
}

const to = (backend: string): string => `      backendRefs: [{name: ${backend}, port: 80}]\n`

t.test('PathPrefix matches whole segments; Exact the whole path; "/" everything', async (t) => {
  const rules = compileRoutes(httpRoute('r', [
    `    - matches: [{path: {type: PathPrefix, value: /foo}}]\n${to('v1')}`,
    `    - matches: [{path: {type: Exact, value: /exact}}]\n${to('v2')}`,
    `    - matches: [{path: {type: PathPrefix, value: /trailing/}}]\n${to('v3')}`,
  ].join('')))
  const cases: [string, string | undefined][] = [
    ['/foo', 'v1'], ['/foo/', 'v1'], ['/foo/bar', 'v1'], ['/foo/bar/baz', 'v1'],
    ['/foobar', undefined], ['/fo', undefined], ['/Foo', undefined], ['/', undefined],
    ['/exact', 'v2'], ['/exact/', undefined], ['/exact/x', undefined], ['/exactly', undefined],
    ['/trailing', 'v3'], ['/trailing/', 'v3'], ['/trailing/x', 'v3'], ['/trailingx', undefined],
  ]
  for (const [path, want] of cases) t.equal(backendOf(matchRoute(rules, req(path))), want, `${path} → ${want ?? '404'}`)

  const all = compileRoutes(httpRoute('r', `    - matches: [{path: {type: PathPrefix, value: /}}]\n${to('v1')}`))
  for (const path of ['/', '/x', '/x/y', '//']) t.equal(backendOf(matchRoute(all, req(path))), 'v1', `"/" matches ${path}`)
  t.ok(prefixMatches('/', '/anything') && prefixMatches('/a/b', '/a/b/') && !prefixMatches('/a/b', '/a/bc'))
})

t.test('RegularExpression is a full match of the path', async (t) => {
  const rules = compileRoutes(httpRoute('r', `    - matches: [{path: {type: RegularExpression, value: '/v[0-9]+'}}]\n${to('v1')}`))
  t.equal(backendOf(matchRoute(rules, req('/v12'))), 'v1')
  t.equal(matchRoute(rules, req('/v1/x')), undefined, 'no match of a prefix of the path')
  t.equal(matchRoute(rules, req('/api/v1')), undefined, 'no match inside the path')
  t.equal(matchRoute(rules, req('/v')), undefined)
  const alt = compileRoutes(httpRoute('r', `    - matches: [{path: {type: RegularExpression, value: '/a|/b'}}]\n${to('v1')}`))
  t.equal(matchRoute(alt, req('/a/x')), undefined, 'an alternation is anchored as a whole')
  t.equal(backendOf(matchRoute(alt, req('/b'))), 'v1')
  t.notOk(pathMatches(rules[0]!.match.path, '/v1?x'), 'the query is never part of the path')
})

t.test('precedence: exact > longest prefix > regular expression', async (t) => {
  const rules = compileRoutes(httpRoute('r', [
    `    - matches: [{path: {type: RegularExpression, value: '/a/.*'}}]\n${to('v3')}`,
    `    - matches: [{path: {type: PathPrefix, value: /a}}]\n${to('v1')}`,
    `    - matches: [{path: {type: PathPrefix, value: /a/b}}]\n${to('v2')}`,
    `    - matches: [{path: {type: Exact, value: /a/b/c}}]\n${to('v3')}`,
  ].join('')))
  t.same(rules.map((r) => r.match.path.type), ['Exact', 'PathPrefix', 'PathPrefix', 'RegularExpression'])
  t.equal(backendOf(matchRoute(rules, req('/a/b/c'))), 'v3', 'exact first')
  t.equal(backendOf(matchRoute(rules, req('/a/b/d'))), 'v2', 'the longest prefix')
  t.equal(backendOf(matchRoute(rules, req('/a/x'))), 'v1', 'a prefix beats a regular expression listed before it')
  const regexOnly = compileRoutes(httpRoute('r', [
    `    - matches: [{path: {type: RegularExpression, value: '/x/.*'}}]\n${to('v3')}`,
    `    - matches: [{path: {type: PathPrefix, value: /a}}]\n${to('v1')}`,
  ].join('')))
  t.equal(backendOf(matchRoute(regexOnly, req('/x/y'))), 'v3', 'the regular expression when no prefix matches')
})

t.test('HTTPRoutePathMatchOrder (conformance)', async (t) => {
  const rules = compileRoutes(httpRoute('path-matching-order', [
    `    - matches: [{path: {type: Exact, value: /match}}]\n${to('v1')}`,
    `    - matches: [{path: {type: Exact, value: /match/exact}}]\n${to('v2')}`,
    `    - matches: [{path: {type: Exact, value: /match/exact/one}}]\n${to('v3')}`,
    `    - matches: [{path: {type: PathPrefix, value: /match/}}]\n${to('v3')}`,
    `    - matches: [{path: {type: PathPrefix, value: /match/prefix/}}]\n${to('v1')}`,
    `    - matches: [{path: {type: PathPrefix, value: /match/prefix/one}}]\n${to('v2')}`,
  ].join('')))
  const cases: [string, string][] = [
    ['/match/exact/one', 'v3'], ['/match/exact', 'v2'], ['/match', 'v1'],
    ['/match/prefix/one/any', 'v2'], ['/match/prefix/any', 'v1'], ['/match/any', 'v3'],
  ]
  for (const [path, want] of cases) t.equal(backendOf(matchRoute(rules, req(path))), want, `${path} → ${want}`)
})

t.test('HTTPRouteHeaderMatching (conformance): names case-insensitive, all headers of a match ANDed', async (t) => {
  const rules = compileRoutes(httpRoute('matching', [
    `    - matches: [{headers: [{name: version, value: one}]}]\n${to('v1')}`,
    `    - matches: [{headers: [{name: version, value: two}]}]\n${to('v2')}`,
    `    - matches: [{headers: [{name: version, value: two}, {name: color, value: orange}]}]\n${to('v1')}`,
    `    - matches: [{headers: [{name: color, value: blue}]}, {headers: [{name: color, value: green}]}]\n${to('v1')}`,
    `    - matches: [{headers: [{name: Color, value: red}]}, {headers: [{name: COLOR, value: yellow}]}]\n${to('v2')}`,
  ].join('')))
  const cases: [Record<string, string>, string | undefined][] = [
    [{ Version: 'one' }, 'v1'],
    [{ Version: 'two' }, 'v2'],
    [{ Version: 'two', Color: 'orange' }, 'v1'],
    [{ Version: 'two', Color: 'blue' }, 'v2'],
    [{ Color: 'orange' }, undefined],
    [{ 'Some-Other-Header': 'one' }, undefined],
    [{ Color: 'blue' }, 'v1'],
    [{ Color: 'green' }, 'v1'],
    [{ Color: 'red' }, 'v2'],
    [{ Color: 'yellow' }, 'v2'],
    [{ Color: 'purple' }, undefined],
    [{ Version: 'ONE' }, undefined],
  ]
  for (const [headers, want] of cases) t.equal(backendOf(matchRoute(rules, req('/', headers))), want, `${JSON.stringify(headers)} → ${want ?? '404'}`)
})

t.test('header values: Exact is case-sensitive, RegularExpression a full match; names asked lowercase', async (t) => {
  const rules = compileRoutes(httpRoute('r', [
    `    - matches: [{headers: [{type: RegularExpression, name: X-Id, value: '[a-f0-9]{4}'}]}]\n${to('v1')}`,
    `    - matches: [{headers: [{name: x-env, value: prod}, {name: X-ENV, value: dev}]}]\n${to('v2')}`,
  ].join('')))
  const asked: string[] = []
  const r = req('/', { 'x-id': 'beef' })
  const spy: RouteRequest = { ...r, header: (name) => { asked.push(name); return r.header(name) } }
  t.equal(backendOf(matchRoute(rules, spy)), 'v1')
  t.same(asked, ['x-id'], 'the header is looked up by its lowercase name')
  t.equal(matchRoute(rules, req('/', { 'x-id': 'beef0' })), undefined, 'no partial regex match')
  t.equal(matchRoute(rules, req('/', { 'x-id': 'BEEF' })), undefined)
  t.equal(backendOf(matchRoute(rules, req('/', { 'x-env': 'prod' }))), 'v2', 'of two entries for one name, the first counts')
  t.equal(matchRoute(rules, req('/', { 'x-env': 'dev' })), undefined, 'the second entry is ignored (Gateway API)')
  t.equal(rules.find((x) => x.rule === 1)!.match.headers.length, 1)
})

t.test('HTTPRouteQueryParamMatching (conformance)', async (t) => {
  const q = (name: string, value: string): string => `{name: ${name}, value: ${value}}`
  const rules = compileRoutes(httpRoute('query-param-matching', [
    `    - matches: [{queryParams: [${q('animal', 'whale')}]}]\n${to('v1')}`,
    `    - matches: [{queryParams: [${q('animal', 'dolphin')}]}]\n${to('v2')}`,
    `    - matches: [{queryParams: [${q('animal', 'dolphin')}, ${q('color', 'blue')}]}, {queryParams: [${q('ANIMAL', 'Whale')}]}]\n${to('v3')}`,
    `    - matches: [{path: {value: /path1}, queryParams: [${q('animal', 'whale')}]}]\n${to('v1')}`,
    `    - matches: [{headers: [{name: version, value: one}], queryParams: [${q('animal', 'whale')}]}]\n${to('v2')}`,
    `    - matches: [{path: {value: /path2}, headers: [{name: version, value: two}], queryParams: [${q('animal', 'whale')}]}]\n${to('v3')}`,
    `    - matches: [{path: {value: /path3}, queryParams: [${q('animal', 'shark')}]}, {path: {value: /path4}, headers: [{name: version, value: three}], queryParams: [${q('animal', 'kraken')}]}]\n${to('v1')}`,
    `    - matches: [{path: {value: /path5}, queryParams: [${q('animal', 'hydra')}]}]\n${to('v1')}`,
    `    - matches: [{headers: [{name: version, value: four}], queryParams: [${q('animal', 'hydra')}]}]\n${to('v3')}`,
  ].join('')))
  const cases: [string, Record<string, string>, string | undefined][] = [
    ['/?animal=whale', {}, 'v1'],
    ['/?animal=dolphin', {}, 'v2'],
    ['/?animal=dolphin&color=blue', {}, 'v3'],
    ['/?ANIMAL=Whale', {}, 'v3'],
    ['/?animal=whale&otherparam=irrelevant', {}, 'v1'],
    ['/?animal=dolphin&color=yellow', {}, 'v2'],
    ['/?color=blue', {}, undefined],
    ['/?animal=dog', {}, undefined],
    ['/?animal=whaledolphin', {}, undefined],
    ['/', {}, undefined],
    ['/path1?animal=whale', {}, 'v1'],
    ['/?animal=whale', { version: 'one' }, 'v2'],
    ['/path2?animal=whale', { version: 'two' }, 'v3'],
    ['/path3?animal=shark', {}, 'v1'],
    ['/path4?animal=kraken', { version: 'three' }, 'v1'],
    ['/?animal=shark', {}, undefined],
    ['/path4?animal=kraken', {}, undefined],
    ['/path5?animal=hydra', {}, 'v1'],
    ['/?animal=hydra', { version: 'four' }, 'v3'],
  ]
  for (const [target, headers, want] of cases) t.equal(backendOf(matchRoute(rules, req(target, headers))), want, `${target} ${JSON.stringify(headers)} → ${want ?? '404'}`)
})

t.test('query values are percent-decoded; the first of a repeated name counts', async (t) => {
  const rules = compileRoutes(httpRoute('r', [
    `    - matches: [{queryParams: [{name: q, value: 'a b/ü'}]}]\n${to('v1')}`,
    `    - matches: [{queryParams: [{name: flag, value: ''}]}]\n${to('v2')}`,
    `    - matches: [{queryParams: [{type: RegularExpression, name: 'n m', value: '[0-9]+'}]}]\n${to('v3')}`,
  ].join('')))
  t.equal(backendOf(matchRoute(rules, req('/?q=a%20b%2F%C3%BC'))), 'v1', 'percent-decoded, UTF-8')
  t.equal(backendOf(matchRoute(rules, req('/?q=a+b/%C3%BC'))), 'v1', '"+" is a space (form encoding)')
  t.equal(backendOf(matchRoute(rules, req('/?q=a%20b/%C3%BC&q=zzz'))), 'v1', 'first value wins')
  t.equal(matchRoute(rules, req('/?q=zzz&q=a%20b/%C3%BC')), undefined, 'a later value is not considered')
  t.equal(backendOf(matchRoute(rules, req('/?flag'))), 'v2', 'a parameter without "=" has the value ""')
  t.equal(backendOf(matchRoute(rules, req('/?n%20m=42'))), 'v3', 'names are decoded too')
  t.equal(matchRoute(rules, req('/?n%20m=42x')), undefined, 'a regex on a query value is a full match')
  t.equal(matchRoute(rules, req('/?q=%zz%')), undefined, 'malformed escapes do not throw')
  t.equal(parseQuery('q=%zz%').get('q'), '%zz%', 'and are kept as written')
  t.equal(parseQuery('?a=1').get('?a'), '1', 'a "?" at the start of the query is part of the first name')
  t.equal(parseQuery('').get('a'), null)
})

t.test('the query string is parsed only when a rule that tests it is reached', async (t) => {
  const rules = compileRoutes(httpRoute('r', [
    `    - matches: [{path: {value: /q}, queryParams: [{name: a, value: '1'}]}]\n${to('v1')}`,
    `    - matches: [{path: {value: /}}]\n${to('v2')}`,
  ].join('')))
  let reads = 0
  const counting = (target: string): RouteRequest => {
    const r = req(target)
    return { method: r.method, path: r.path, header: r.header, get query() { reads++; return r.query } }
  }
  t.equal(backendOf(matchRoute(rules, counting('/other?a=1'))), 'v2')
  t.equal(reads, 0, 'no rule with query params matched the path: the query was never read')
  t.equal(backendOf(matchRoute(rules, counting('/q?a=1'))), 'v1')
  t.equal(reads, 1)
})

t.test('HTTPRouteMethodMatching (conformance), and method ranks above header count', async (t) => {
  const rules = compileRoutes(httpRoute('method-matching', [
    `    - matches: [{method: POST}]\n${to('v1')}`,
    `    - matches: [{method: GET}]\n${to('v2')}`,
  ].join('')))
  t.equal(backendOf(matchRoute(rules, req('/', {}, 'POST'))), 'v1')
  t.equal(backendOf(matchRoute(rules, req('/', {}, 'GET'))), 'v2')
  t.equal(matchRoute(rules, req('/', {}, 'HEAD')), undefined)
  t.equal(matchRoute(rules, req('/', {}, 'get')), undefined, 'methods are case-sensitive (RFC 9110)')

  const ranked = compileRoutes(httpRoute('r', [
    `    - matches: [{headers: [{name: a, value: '1'}, {name: b, value: '2'}], queryParams: [{name: q, value: '1'}]}]\n${to('v1')}`,
    `    - matches: [{method: GET}]\n${to('v2')}`,
    `    - matches: [{headers: [{name: a, value: '1'}], queryParams: [{name: q, value: '1'}, {name: r, value: '1'}]}]\n${to('v3')}`,
  ].join('')))
  const all = { a: '1', b: '2' }
  t.equal(backendOf(matchRoute(ranked, req('/?q=1&r=1', all, 'GET'))), 'v2', 'a method match beats two header matches')
  t.equal(backendOf(matchRoute(ranked, req('/?q=1&r=1', all, 'PUT'))), 'v1', 'then more header matches beat more query matches')
  t.equal(backendOf(matchRoute(ranked, req('/?q=1&r=1', { a: '1' }, 'PUT'))), 'v3')
})

t.test('ties: route "{namespace}/{name}" order, then rule order, then match order', async (t) => {
  const rules = compileRoutes([
    httpRoute('b', `    - matches: [{path: {value: /x}}]\n${to('v1')}`),
    httpRoute('a', [
      `    - matches: [{path: {value: /y}}, {path: {value: /x}}]\n${to('v2')}`,
      `    - matches: [{path: {value: /x}}]\n${to('v3')}`,
    ].join('')),
  ].join('---\n'))
  t.equal(backendOf(matchRoute(rules, req('/x'))), 'v2', 'route a before route b, its rule 0 before its rule 1')
  t.same(rules.filter((r) => r.match.path.value === '/x').map((r) => `${r.route} ${r.rule}`), ['HTTPRoute/ns/a 0', 'HTTPRoute/ns/a 1', 'HTTPRoute/ns/b 0'])
  const sameRule = compileRoutes(httpRoute('r', `    - matches: [{path: {value: /x}, headers: [{name: h, value: '1'}]}, {path: {value: /x}, headers: [{name: h, value: '2'}]}]\n${to('v1')}`))
  t.same(sameRule.map((r) => r.match.headers[0]!.value), ['1', '2'], 'matches of one rule keep their order')
})

t.test('no matches at all means everything (Gateway API); no rule matching is a 404', async (t) => {
  const rules = compileRoutes(httpRoute('r', [
    `    - matches: []\n${to('v1')}`,
  ].join('')))
  t.equal(backendOf(matchRoute(rules, req('/any/path?x=1', {}, 'DELETE'))), 'v1')
  t.equal(matchRoute([], req('/')), undefined)
})
