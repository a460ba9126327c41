import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { z } from 'zod'
import { SourceReadError } from '../../../policy/errors.ts'
import { deepFreeze } from '../../../policy/freeze.ts'
import { objectKeysAt, schemaProblems, suggest } from '../../../policy/schema-problems.ts'
import { parseSource, positionOf, readSource } from '../../../policy/source.ts'

const dir = mkdtempSync(join(tmpdir(), 'hostmesh-source-'))

t.test('multi-document files keep every document with its positions', async (t) => {
  const { docs, problems } = parseSource('p.yaml', 'kind: A\nspec:\n  x: 1\n---\nkind: B\nlist:\n  - a: 1\n  - b: 2\n')
  t.same(problems, [])
  t.equal(docs.length, 2)
  t.same(docs.map((d) => d.value), [{ kind: 'A', spec: { x: 1 } }, { kind: 'B', list: [{ a: 1 }, { b: 2 }] }])
  t.same(positionOf(docs[0]!, ['spec', 'x']), { line: 3, col: 6 })
  t.same(positionOf(docs[0]!, ['spec', 'x'], 'key'), { line: 3, col: 3 })
  t.same(positionOf(docs[1]!, ['list', 1, 'b']), { line: 8, col: 8 })
  t.same(positionOf(docs[1]!, ['list', 5, 'b']), { line: 7, col: 3 }, 'a missing path points at the deepest existing node')
  t.same(positionOf(docs[1]!, ['nope']), { line: 5, col: 1 })
})

t.test('syntax errors are collected per document with positions, not thrown', async (t) => {
  const { docs, problems } = parseSource('p.yaml', 'a: 1\n---\nb: [\n---\nc: 3\n')
  t.equal(docs.length, 3)
  t.equal(docs[1]!.value, undefined)
  t.equal(docs[2]!.value && (docs[2]!.value as { c: number }).c, 3)
  t.ok(problems.length >= 1)
  t.ok(problems.every((p) => p.file === 'p.yaml' && p.line >= 3 && p.message.startsWith('YAML syntax:')))
})

t.test('alias expansion is bounded', async (t) => {
  const bomb = ['a0: &a0 [x, x, x, x, x, x, x, x, x, x]', ...Array.from({ length: 9 }, (_, i) => `a${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(', ')}]`)].join('\n')
  const started = Date.now()
  const { problems } = parseSource('bomb.yaml', bomb)
  t.match(problems[0], { line: 1, col: 1, message: /YAML aliases: .*limit is 100/ })
  t.ok(Date.now() - started < 5000, 'fails fast')
  t.same(parseSource('ok.yaml', 'a: &x 1\nb: *x\n').docs[0]!.value, { a: 1, b: 1 }, 'ordinary aliases still work')
})

t.test('files over the size limit are refused before parsing', async (t) => {
  const path = join(dir, 'big.yaml')
  writeFileSync(path, 'a: 1\n'.repeat(100))
  await t.rejects(readSource(path, { maxBytes: 100, maxAliasCount: 1 }), { code: 'HOSTMESH_ERR_SOURCE_READ', message: /500 bytes, larger than the limit of 100 bytes/ })
  t.equal(await readSource(path, { maxBytes: 500, maxAliasCount: 1 }), 'a: 1\n'.repeat(100), 'exactly at the limit is fine')
  const err = await t.rejects(readSource(join(dir, 'missing.yaml'))) as unknown as SourceReadError
  t.match(err, { file: join(dir, 'missing.yaml'), message: /cannot open: ENOENT/ })
})

t.test('schema problems name the key, the value and what is allowed', async (t) => {
  const schema = z.strictObject({
    name: z.string().min(2).max(4),
    list: z.array(z.number()).min(1).max(2),
    mode: z.enum(['A', 'B']).default('A'),
    port: z.number().int().min(1),
    nested: z.strictObject({ enabled: z.boolean() }).optional(),
    ip: z.string().refine(() => false, { message: 'expected an address' }),
    email: z.email().optional(),
  })
  const text = 'name: abcdef\nlist: [1, 2, 3]\nmode: C\nport: 0\nnested: {enabeld: true}\nip: x\nemail: nope\n'
  const { docs } = parseSource('s.yaml', text)
  const res = schema.safeParse(docs[0]!.value)
  t.notOk(res.success)
  const problems = schemaProblems(docs[0]!, schema, res.error!.issues)
  t.same(problems.map((p) => `${p.line}:${p.col} ${p.message}`), [
    '1:7 name: "abcdef" is too long: expected at most 4 characters',
    '2:7 list: [1,2,3] is too long: expected at most 2 items',
    '3:7 mode: "C" is not allowed; expected one of "A", "B"',
    '4:7 port: 0 is too small: expected at least 1',
    '5:9 nested.enabled: required key is missing (expected a boolean)',
    '5:10 unknown key "enabeld" under nested; did you mean "enabled"? Allowed keys: enabled',
    '6:5 ip: expected an address; got "x"',
    '7:8 email: "nope" is not valid: Invalid email address',
  ])
  const short = schemaProblems(parseSource('s.yaml', 'name: a\nlist: []\nport: 1\nip: x\nnested: 3\n').docs[0]!, schema,
    schema.safeParse({ name: 'a', list: [], port: 1, ip: 'x', nested: 3 }).error!.issues)
  t.match(short.map((p) => p.message), ['name: "a" is too short: expected at least 2 characters', 'list: [] is too short: expected at least 1 item', /^ip:/, 'nested: expected a mapping, got 3'])
})

t.test('allowed keys are found through defaults, optionals and arrays', async (t) => {
  const schema = z.strictObject({ a: z.array(z.strictObject({ b: z.number(), c: z.string() })).default([]), d: z.number() })
  t.same(objectKeysAt(schema, []), ['a', 'd'])
  t.same(objectKeysAt(schema, ['a', 0]), ['b', 'c'])
  t.same(objectKeysAt(schema, ['d']), [])
  t.same(objectKeysAt(schema, ['zz']), [])
  t.equal(suggest('prots', ['ports', 'admin']), 'ports')
  t.equal(suggest('completely-different', ['ports', 'admin']), undefined)
})

t.test('deepFreeze freezes nested objects, arrays and map values', async (t) => {
  const inner = { x: 1 }
  const v = deepFreeze({ a: { b: [inner] }, m: new Map([['k', { y: 2 }]]), s: new Set([{ z: 3 }]) })
  t.ok(Object.isFrozen(v.a.b))
  t.ok(Object.isFrozen(inner))
  t.ok(Object.isFrozen(v.m.get('k')))
  t.ok(Object.isFrozen([...v.s][0]))
  const cyclic: { self?: unknown } = {}
  cyclic.self = cyclic
  t.doesNotThrow(() => deepFreeze(cyclic))
})
