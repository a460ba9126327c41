// readPolicyDir's stat cache and the watcher's narrowing of it to the files events named.
import { mkdirSync, mkdtempSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { readPolicyDir, StatCache } from '../../../policy/load.ts'

function dirWith(t: Test, files: Record<string, string>): string {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-readdir-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const [name, text] of Object.entries(files)) writeFileSync(join(dir, name), text)
  return dir
}

const texts = (d: Awaited<ReturnType<typeof readPolicyDir>>): string[] => d.files.map((f) => f.text)

t.test('with `changed`, only the named files are stat-ed; new names always are', async (t) => {
  const dir = dirWith(t, { 'a.yaml': 'a: 1\n', 'b.yaml': 'b: 1\n' })
  const statCache = new StatCache()
  t.same(texts(await readPolicyDir(dir, undefined, { statCache })), ['a: 1\n', 'b: 1\n'])
  writeFileSync(join(dir, 'b.yaml'), 'b: 2\n')
  writeFileSync(join(dir, 'c.yaml'), 'c: 1\n')
  // b.yaml was not named, so its cached bytes stand; c.yaml is new to the cache, so it is read.
  t.same(texts(await readPolicyDir(dir, undefined, { statCache, changed: new Set(['a.yaml']) })), ['a: 1\n', 'b: 1\n', 'c: 1\n'])
  t.same(texts(await readPolicyDir(dir, undefined, { statCache, changed: new Set(['b.yaml']) })), ['a: 1\n', 'b: 2\n', 'c: 1\n'])
  rmSync(join(dir, 'a.yaml'))
  t.same(texts(await readPolicyDir(dir, undefined, { statCache, changed: new Set() })), ['b: 2\n', 'c: 1\n'], 'a removed name is dropped by readdir alone')
})

t.test('`fresh` and symlinked policy files ignore `changed`', async (t) => {
  const dir = dirWith(t, { 'a.yaml': 'a: 1\n' })
  const statCache = new StatCache()
  await readPolicyDir(dir, undefined, { statCache })
  writeFileSync(join(dir, 'a.yaml'), 'a: 22\n')
  t.same(texts(await readPolicyDir(dir, undefined, { statCache, fresh: true, changed: new Set() })), ['a: 22\n'])

  // A change behind a link is reported under the target's name, so every file is stat-ed.
  mkdirSync(join(dir, 'real'))
  writeFileSync(join(dir, 'real', 'l.yaml'), 'l: 1\n')
  symlinkSync(join('real', 'l.yaml'), join(dir, 'l.yaml'))
  t.same(texts(await readPolicyDir(dir, undefined, { statCache })), ['a: 22\n', 'l: 1\n'])
  writeFileSync(join(dir, 'real', 'l.yaml'), 'l: 2\n')
  t.same(texts(await readPolicyDir(dir, undefined, { statCache, changed: new Set(['l.yaml.tmp']) })), ['a: 22\n', 'l: 2\n'])
})
