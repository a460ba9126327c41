// 1,000 mutated policy files (deterministic: a seeded PRNG), each loaded next to the intact
// rest of the examples. None may throw, and each result is all or nothing: a complete,
// frozen snapshot, or located problems and no snapshot.
import { readdirSync, readFileSync } from 'node:fs'
import t from 'tap'
import { fastParseFile, hashFiles, parsePolicyFiles, type LoadedDoc } from '../../../policy/load.ts'
import { DEFAULT_LIMITS } from '../../../policy/source.ts'
import { buildSnapshot } from '../../../policy/pipeline.ts'

const DIR = new URL('../../../policy/examples/', import.meta.url).pathname
const FILES = readdirSync(DIR).filter((f) => f.endsWith('.yaml')).sort().map((f) => ({ path: `${DIR}${f}`, text: readFileSync(`${DIR}${f}`, 'utf8') }))
const MUTANTS = 1000

// mulberry32: small, seeded, good enough to spread mutations.
function prng(seed: number): () => number {
  return () => {
    seed = (seed + 0x6d2b79f5) | 0
    let x = Math.imul(seed ^ (seed >>> 15), 1 | seed)
    x = (x + Math.imul(x ^ (x >>> 7), 61 | x)) ^ x
    return ((x ^ (x >>> 14)) >>> 0) / 4294967296
  }
}

const TOKENS = [':', '-', '[', ']', '{', '}', '&a', '*a', '!!binary', '? ', '|', '>', '#', '"', "'", '---', '...', ' ', '\t', '0', '-1', '99999', '1e9', 'null', '~', 'true', '10.96.0.20', 'fd96::20', 'kind: Service', 'weight: 0', '/(a+)+', '\u0000', '\u2028', '%YAML 1.2', '%YAML 1.1', '<<: *a', '0b101', '-0x10', '0x1F', '+.5', '015010', '1_000', '0o17']

function mutate(text: string, rnd: () => number): string {
  const pick = <T>(xs: readonly T[]): T => xs[Math.floor(rnd() * xs.length)]!
  let lines = text.split('\n')
  const steps = 1 + Math.floor(rnd() * 3)
  for (let s = 0; s < steps; s++) {
    const i = Math.floor(rnd() * lines.length)
    const line = lines[i] ?? ''
    switch (Math.floor(rnd() * 9)) {
      case 0: lines.splice(i, 1); break
      case 1: lines.splice(i, 0, line); break
      case 2: { const j = Math.floor(rnd() * lines.length); [lines[i], lines[j]] = [lines[j] ?? '', line]; break }
      case 3: { const c = Math.floor(rnd() * (line.length + 1)); lines[i] = line.slice(0, c) + pick(TOKENS) + line.slice(c); break }
      case 4: { const c = Math.floor(rnd() * line.length); lines[i] = line.slice(0, c) + line.slice(c + 1); break }
      case 5: lines[i] = line.replace(/\d+/, () => pick(['0', '-3', '65536', '1.5', '4294967296', 'x', '0b101', '-0x10', '+.5', '0o17', '1_0'])); break
      case 6: lines[i] = rnd() < 0.5 ? ` ${line}` : line.replace(/^ /, ''); break
      case 7: lines = lines.slice(0, Math.max(1, i)); break
      default: lines[i] = line.replace(/: .*/, `: ${pick(TOKENS)}`)
    }
  }
  return lines.join('\n')
}

t.test(`${MUTANTS} mutated files: no uncaught error, never a partial snapshot`, async (t) => {
  const rnd = prng(0x5eed)
  let accepted = 0
  let rejected = 0
  for (let n = 0; n < MUTANTS; n++) {
    const victim = Math.floor(rnd() * FILES.length)
    const files = FILES.map((f, i) => ({ path: f.path, text: i === victim ? mutate(f.text, rnd) : f.text, sha256: String(i) }))
    let r
    try {
      r = buildSnapshot({ dir: DIR, missing: false, files, hash: hashFiles(files), problems: [] }, { generation: 1, trustDomain: 'cluster.local', localNode: 'node-c', reservedPorts: [15000, 15006, 15008] })
    } catch (err) {
      t.fail(`mutant ${n} threw: ${String(err)}\n${files[victim]!.text}`)
      continue
    }
    if (r.ok) {
      accepted++
      const s = r.snapshot
      if (!Object.isFrozen(s) || !Object.isFrozen(s.servicePorts) || s.files.length !== FILES.length || s.nodes.size === 0) t.fail(`mutant ${n}: incomplete snapshot`)
    } else {
      rejected++
      if (!('problems' in r) || r.problems.length === 0 || 'snapshot' in r) t.fail(`mutant ${n}: rejected without problems, or with a snapshot`)
      for (const p of r.problems) {
        if (p.message.startsWith('internal error')) t.fail(`mutant ${n}: ${p.message}\n${files[victim]!.text}`)
        if (!(p.line >= 1 && p.col >= 1 && p.file.length > 0)) t.fail(`mutant ${n}: unlocated problem ${JSON.stringify(p)}`)
      }
    }
  }
  t.equal(accepted + rejected, MUTANTS)
  t.ok(rejected > MUTANTS / 4, `${rejected} rejected, ${accepted} accepted (mutations still valid)`)
})

// The fast parser (js-yaml) is used only for files that are entirely valid; the
// position-keeping one (yaml) for everything else. They must agree wherever the fast path
// answers: same documents, same values, and the slow path finding no problem either.
t.test('fast and position-keeping parsers agree on every file the fast path accepts', async (t) => {
  const rnd = prng(0xfa57)
  let compared = 0
  const strip = (docs: LoadedDoc[]): unknown[] => docs.map((d) => ({ key: d.key, doc: d.doc }))
  for (let n = 0; n < MUTANTS; n++) {
    const f = FILES[Math.floor(rnd() * FILES.length)]!
    const file = { path: f.path, text: n % 10 === 0 ? f.text : mutate(f.text, rnd) }
    const fast = fastParseFile(file, DEFAULT_LIMITS)
    if (!fast) continue
    const slow = parsePolicyFiles([file])
    if (slow.problems.length > 0) t.fail(`mutant ${n}: fast path accepted what the slow path rejects: ${slow.problems[0]!.message}\n${file.text}`)
    else if (JSON.stringify(strip(fast)) !== JSON.stringify(strip(slow.docs))) t.fail(`mutant ${n}: the parsers disagree\n${file.text}`)
    else compared++
  }
  t.ok(compared > 100, `${compared} files compared`)
})

t.test('the fast path leaves node properties (anchors, aliases, tags) to the bounded parser', async (t) => {
  t.equal(fastParseFile({ path: 'a.yaml', text: 'a: &x 1\nb: *x\n' }, DEFAULT_LIMITS), undefined)
  t.equal(fastParseFile({ path: 'a.yaml', text: 'a: !!str 1\n' }, DEFAULT_LIMITS), undefined)
  t.equal(fastParseFile({ path: 'a.yaml', text: 'kind: [\n' }, DEFAULT_LIMITS), undefined, 'a syntax error: slow path, for the position')
  const docs = fastParseFile({ path: 'n.yaml', text: 'apiVersion: hostmesh.io/v1alpha1\nkind: Node\nmetadata: {name: a}\nspec:\n  addresses: [10.0.0.1]\n' }, DEFAULT_LIMITS)
  t.equal(docs?.length, 1)
  t.same(docs![0]!.locate(['spec', 'addresses', 0]), { line: 5, col: 15 }, 'positions found lazily')
})

