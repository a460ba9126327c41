import t from 'tap'
import { clip, CLIP_MAX } from '../../../base/clip.ts'

t.test('a long string keeps max characters and says how much was cut', async (t) => {
  t.equal(CLIP_MAX, 128)
  const out = clip('a'.repeat(4000))
  t.equal(out, `${'a'.repeat(128)}…(+3872 chars)`)
  t.equal(clip('abcdef', 4), 'abcd…(+2 chars)')
})

t.test('short values are returned as they are', async (t) => {
  t.equal(clip(''), '')
  t.equal(clip('GET'), 'GET')
  t.equal(clip('a'.repeat(128)), 'a'.repeat(128), 'exactly max is not cut')
  t.equal(clip(404), '404')
  t.equal(clip(12345678901234567890n, 5), '12345…(+15 chars)')
  t.equal(clip(false), 'false')
  t.equal(clip(null), 'null')
})

t.test('undefined stays undefined, so the field is left out', async (t) => {
  t.equal(clip(undefined), undefined)
  const header: string | string[] | undefined = undefined
  t.same(JSON.parse(JSON.stringify({ ua: clip(header) })), {})
})

t.test('arrays (HTTP/2 headers) are joined with ", " first', async (t) => {
  t.equal(clip(['a', 'b', 'c']), 'a, b, c')
  t.equal(clip(['text/html', 'x'], 8), 'text/htm…(+4 chars)')
  t.equal(clip([]), '')
  const many = Array.from({ length: 10_000 }, () => 'v'.repeat(100))
  const out = clip(many)
  const total = 10_000 * 100 + 9_999 * 2
  t.equal(out, `${many.join(', ').slice(0, 128)}…(+${total - 128} chars)`)
  t.equal(clip(['x'.repeat(500), 'y'], 10), `${'x'.repeat(10)}…(+493 chars)`)
})

t.test('Buffers: the first max bytes as UTF-8, the rest counted in bytes', async (t) => {
  t.equal(clip(Buffer.from('hello')), 'hello')
  t.equal(clip(Buffer.alloc(4000, 0x41)), `${'A'.repeat(128)}…(+3872 bytes)`)
  const euro = Buffer.from('€€€') // 3 bytes each
  const out = clip(euro, 4)
  t.equal(out, '€\uFFFD…(+5 bytes)', 'a sequence cut at the end becomes U+FFFD')
  t.ok(clip(Buffer.from([0xff, 0xfe, 0x00, 0x0a]))?.length === 4)
})

t.test('never half a surrogate pair', async (t) => {
  const out = clip('ab😀cd', 3) // '😀' is two UTF-16 code units
  t.equal(out, 'ab…(+4 chars)')
  t.equal(clip('😀😀', 2), '😀…(+2 chars)')
})

t.test('odd max values', async (t) => {
  t.equal(clip('abc', 0), '…(+3 chars)')
  t.equal(clip('abc', -5), '…(+3 chars)')
  t.equal(clip('abcdef', 2.9), 'ab…(+4 chars)')
  t.equal(clip('a'.repeat(200), Number.NaN), `${'a'.repeat(128)}…(+72 chars)`)
  t.equal(clip('a'.repeat(200), Infinity), 'a'.repeat(200))
})

t.test('never throws', async (t) => {
  const hostile = { toString() { throw new Error('boom') } }
  t.equal(clip(hostile as unknown as string), '[unprintable]')
  t.equal(clip([Object.create(null) as string]), '[unprintable]')
  t.equal(clip(Symbol('s') as unknown as string), 'Symbol(s)')
  t.equal(clip({ a: 1 } as unknown as string), '[object Object]')
})
