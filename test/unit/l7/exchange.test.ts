// splitTarget(): the path and query of a request-target (RFC 9112 §3.2), in origin-form and
// absolute-form, as both pipelines route, authorize and forward them.
import t from 'tap'
import { splitTarget } from '../../../daemon/l7/exchange.ts'

t.test('origin-form', async (t) => {
  t.same(splitTarget('/'), { path: '/', query: '' })
  t.same(splitTarget('/a/b'), { path: '/a/b', query: '' })
  t.same(splitTarget('/a/b?x=1&y'), { path: '/a/b', query: 'x=1&y' })
  t.same(splitTarget('/a?'), { path: '/a', query: '' }, 'an empty query')
  t.same(splitTarget('/a?x=1?y=2'), { path: '/a', query: 'x=1?y=2' }, "only the first '?' splits")
  t.same(splitTarget('/a?next=/b'), { path: '/a', query: 'next=/b' })
})

t.test('absolute-form keeps only the path and query', async (t) => {
  t.same(splitTarget('http://a.example/p/q?x=1'), { path: '/p/q', query: 'x=1' })
  t.same(splitTarget('http://a.example:8080/p'), { path: '/p', query: '' })
  t.same(splitTarget('https://[fd00::1]:443/p?x'), { path: '/p', query: 'x' })
  t.same(splitTarget('http://a.example'), { path: '/', query: '' }, 'an empty path is /')
})

t.test('absolute-form with an empty path and a query', async (t) => {
  // RFC 3986: the path ends at the first '?'; a '/' inside the query is not the path's.
  t.same(splitTarget('http://a.example?x=1'), { path: '/', query: 'x=1' })
  t.same(splitTarget('http://a.example:80?next=/admin'), { path: '/', query: 'next=/admin' })
})

t.test('other forms are left as they are', async (t) => {
  t.same(splitTarget('*'), { path: '*', query: '' }, 'asterisk-form (OPTIONS)')
  t.same(splitTarget('a.example:443'), { path: 'a.example:443', query: '' }, 'authority-form never reaches a route')
  t.same(splitTarget(''), { path: '', query: '' })
})
