// Each invalid input must produce exactly the reviewed problems: right file, line, column,
// key, and a message that says what was expected. The table is fixtures/invalid-cases.json
// (73 cases); base.yaml is a small valid policy that each case file is loaded next to.
import { readFileSync } from 'node:fs'
import t from 'tap'
import { formatProblem } from '../../../policy/errors.ts'
import { hashFiles } from '../../../policy/load.ts'
import { buildSnapshot } from '../../../policy/pipeline.ts'

const base = readFileSync(new URL('./fixtures/base.yaml', import.meta.url), 'utf8')
const cases = JSON.parse(readFileSync(new URL('./fixtures/invalid-cases.json', import.meta.url), 'utf8')) as Array<{ name: string; yaml: string; expect: string[] }>

t.ok(cases.length >= 40, `${cases.length} distinct invalid inputs`)

t.test('the base policy alone is valid', async (t) => {
  const files = [{ path: 'base.yaml', text: base, sha256: 'x' }]
  const r = buildSnapshot({ dir: 'd', missing: false, files, hash: hashFiles(files), problems: [] }, { generation: 1, trustDomain: 'cluster.local' })
  t.ok(r.ok, r.ok ? '' : r.problems.map(formatProblem).join('\n'))
})

for (const c of cases) {
  t.test(c.name, async (t) => {
    const files = [{ path: 'base.yaml', text: base, sha256: 'a' }, { path: 'case.yaml', text: c.yaml, sha256: 'b' }]
    const r = buildSnapshot({ dir: 'd', missing: false, files, hash: hashFiles(files), problems: [] }, { generation: 1, trustDomain: 'cluster.local' })
    t.notOk(r.ok, 'rejected')
    if (r.ok) return
    t.same(r.problems.map(formatProblem), c.expect)
    for (const p of r.problems) t.match(formatProblem(p), /^[\w./-]+:\d+:\d+: \S/, 'file:line:col: message')
  })
}

t.test('all problems are collected, across files and documents', async (t) => {
  const files = cases.slice(5, 25).map((c, i) => ({ path: `case${String(i).padStart(2, '0')}.yaml`, text: c.yaml, sha256: String(i) }))
  files.push({ path: 'base.yaml', text: base, sha256: 'a' })
  const r = buildSnapshot({ dir: 'd', missing: false, files, hash: hashFiles(files), problems: [] }, { generation: 1, trustDomain: 'cluster.local' })
  t.notOk(r.ok)
  if (r.ok) return
  const filesWithProblems = new Set(r.problems.map((p) => p.file))
  t.ok(filesWithProblems.size >= 15, `problems reported in ${filesWithProblems.size} files`)
})
