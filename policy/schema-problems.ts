// Turns zod issues into located, readable problems: the key, the value given and what is
// allowed, at the file:line:col where the user wrote it. zod's own messages ("Invalid
// input") name neither the value nor the alternatives, so each issue kind is phrased here.
import type { z } from 'zod'
import type { SourceProblem } from './errors.ts'
import { positionOf, type SourceDocument } from './source.ts'

type Issue = z.core.$ZodIssue

export function schemaProblems(src: SourceDocument, schema: z.ZodType, issues: readonly Issue[]): SourceProblem[] {
  const out: SourceProblem[] = []
  for (const issue of issues) {
    if (issue.code === 'unrecognized_keys') {
      const allowed = objectKeysAt(schema, issue.path)
      for (const k of issue.keys) {
        const path = [...issue.path, k]
        const hint = suggest(k, allowed)
        out.push(problem(src, path, 'key',
          `unknown key "${k}"${where(issue.path)}${hint ? `; did you mean "${hint}"?` : ''} Allowed keys: ${allowed.join(', ') || '(none)'}`))
      }
      continue
    }
    const value = valueAt(src.value, issue.path)
    out.push(problem(src, issue.path, 'value', `${keyName(issue.path)}: ${describe(issue, value)}`))
  }
  return out.sort((a, b) => a.line - b.line || a.col - b.col)
}

function problem(src: SourceDocument, path: readonly PropertyKey[], which: 'key' | 'value', message: string): SourceProblem {
  const at = positionOf(src, path, which)
  return { file: src.file, line: at.line, col: at.col, key: keyName(path), message }
}

function describe(issue: Issue, value: unknown): string {
  switch (issue.code) {
    case 'invalid_type':
      if (value === undefined) return `required key is missing (expected ${article(issue.expected)})`
      return `expected ${article(issue.expected)}, got ${show(value)}`
    case 'too_big':
      return `${show(value)} is too ${issue.origin === 'array' || issue.origin === 'string' ? 'long' : 'large'}: ${bound('at most', issue.maximum, issue.origin)}`
    case 'too_small':
      return `${show(value)} is too ${issue.origin === 'array' || issue.origin === 'string' ? 'short' : 'small'}: ${bound('at least', issue.minimum, issue.origin)}`
    case 'invalid_value':
      return `${show(value)} is not allowed; expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}`
    case 'invalid_format':
      return `${show(value)} is not valid: ${issue.message}`
    default:
      // Custom checks (superRefine) phrase their own message, including what is allowed.
      return value === undefined ? issue.message : `${issue.message}; got ${show(value)}`
  }
}

function bound(word: string, n: number | bigint, origin: string): string {
  if (origin === 'array') return `expected ${word} ${n} item${n === 1 ? '' : 's'}`
  if (origin === 'string') return `expected ${word} ${n} character${n === 1 ? '' : 's'}`
  return `expected ${word} ${n}`
}

function article(type: string): string {
  if (type === 'object') return 'a mapping'
  if (type === 'array') return 'a list'
  return /^[aeiou]/.test(type) ? `an ${type}` : `a ${type}`
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing'
  if (typeof v === 'number' || typeof v === 'boolean' || typeof v === 'bigint') return String(v)
  const text = JSON.stringify(v) ?? String(v)
  return text.length > 80 ? `${text.slice(0, 77)}...` : text
}

export function keyName(path: readonly PropertyKey[]): string {
  return path.map((s, i) => (typeof s === 'number' ? `[${s}]` : `${i ? '.' : ''}${String(s)}`)).join('') || '(document)'
}

function where(path: readonly PropertyKey[]): string {
  return path.length ? ` under ${keyName(path)}` : ''
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let cur = root
  for (const seg of path) {
    if (cur === null || typeof cur !== 'object') return undefined
    cur = (cur as Record<PropertyKey, unknown>)[seg]
  }
  return cur
}

interface Def { type: string; shape?: Record<string, z.ZodType>; innerType?: z.ZodType; element?: z.ZodType; in?: z.ZodType }

/** The keys an object schema accepts at `path`, for "allowed keys" and "did you mean". */
export function objectKeysAt(schema: z.ZodType, path: readonly PropertyKey[]): string[] {
  let cur: z.ZodType | undefined = schema
  let i = 0
  for (let guard = 0; cur && guard < 64; guard++) {
    const def: Def = (cur as unknown as { _zod: { def: Def } })._zod.def
    if (def.innerType) { cur = def.innerType; continue }
    if (def.type === 'pipe' && def.in) { cur = def.in; continue }
    if (i === path.length) return def.type === 'object' && def.shape ? Object.keys(def.shape) : []
    const seg = path[i++]
    if (def.type === 'object' && def.shape) cur = def.shape[String(seg)]
    else if (def.type === 'array' && def.element) cur = def.element
    else return []
  }
  return []
}

/** The closest allowed key within edit distance 2, so typos get a precise hint. */
export function suggest(key: string, allowed: readonly string[]): string | undefined {
  let best: string | undefined
  let bestD = 3
  for (const a of allowed) {
    const d = distance(key.toLowerCase(), a.toLowerCase())
    if (d < bestD) { best = a; bestD = d }
  }
  return best
}

function distance(a: string, b: string): number {
  const row = Array.from({ length: b.length + 1 }, (_, j) => j)
  for (let i = 1; i <= a.length; i++) {
    let prev = row[0]!
    row[0] = i
    for (let j = 1; j <= b.length; j++) {
      const tmp = row[j]!
      row[j] = Math.min(row[j]! + 1, row[j - 1]! + 1, prev + (a[i - 1] === b[j - 1] ? 0 : 1))
      prev = tmp
    }
  }
  return row[b.length]!
}
