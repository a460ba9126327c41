// Stage 1 and 2 of a reload: read the policy dir, parse every YAML document with positions,
// and validate each against its kind's schema. Pure except readPolicyDir (the only I/O).
import { createHash } from 'node:crypto'
import { readdir, stat } from 'node:fs/promises'
import { join } from 'node:path'
import jsYaml from 'js-yaml'
import type { z } from 'zod'
import type { SourceProblem } from './errors.ts'
import { EnvelopeSchema, KIND_SCHEMAS, type Kind } from './schema/documents.ts'
import { schemaProblems } from './schema-problems.ts'
import { DEFAULT_LIMITS, parseSource, positionOf, readSource, type Position, type SourceLimits } from './source.ts'

export interface PolicyFile {
  readonly path: string
  readonly text: string
  readonly sha256: string
}

export interface PolicyDir {
  readonly dir: string
  /** The directory does not exist (as opposed to existing and holding no policy file). */
  readonly missing: boolean
  readonly files: readonly PolicyFile[]
  /** sha256 over every file's name and content, in name order: "did anything change?" */
  readonly hash: string
  readonly problems: readonly SourceProblem[]
}

export type DocOf<K extends Kind> = z.output<(typeof KIND_SCHEMAS)[K]>

export interface LoadedDoc<K extends Kind = Kind> {
  readonly kind: K
  /** `Kind/namespace/name`, or `Node/name`: unique per policy. */
  readonly key: string
  readonly doc: DocOf<K>
  readonly file: string
  /** Where a value (or its key) of this document is written, for error messages. */
  locate(path: readonly PropertyKey[], which?: 'key' | 'value'): Position
}

export const MAX_FILES = 10_000

/** Policy files are `*.yaml` / `*.yml` at the top of the dir; dotfiles (editor temp files,
 * a ConfigMap's `..data`) are skipped. Symlinks are followed, as ConfigMap mounts need. */
export function isPolicyFileName(name: string): boolean {
  return !name.startsWith('.') && /\.ya?ml$/.test(name)
}

/**
 * Remembers each file's content by its stat identity (inode, size, mtime, ctime in ns), so a
 * reload re-reads only files that changed. A symlink swap or atomic rename changes the inode,
 * a write changes mtime. `readPolicyDir(..., { fresh: true })` (resync, SIGHUP) ignores it
 * and reads everything.
 */
export class StatCache {
  readonly #entries = new Map<string, { id: string; file: PolicyFile }>()

  get(path: string, id: string): PolicyFile | undefined {
    const e = this.#entries.get(path)
    return e && e.id === id ? e.file : undefined
  }

  /** The last content read for a path, whatever its stat now is. */
  peek(path: string): PolicyFile | undefined {
    return this.#entries.get(path)?.file
  }

  set(path: string, id: string, file: PolicyFile): void {
    this.#entries.set(path, { id, file })
  }

  retain(paths: ReadonlySet<string>): void {
    for (const p of this.#entries.keys()) if (!paths.has(p)) this.#entries.delete(p)
  }
}

export interface ReadDirOptions {
  readonly statCache?: StatCache
  /** Ignore the stat cache and read every file (start, SIGHUP, resync). */
  readonly fresh?: boolean
  /**
   * Names the file watcher saw change. When set, only these, and names the cache has not
   * seen, are stat-ed; the rest keep their cached content. Ignored when any policy file is a
   * symlink, since a change behind a link is reported under the link target's name.
   */
  readonly changed?: ReadonlySet<string>
}

export async function readPolicyDir(dir: string, limits: SourceLimits = DEFAULT_LIMITS, opts: ReadDirOptions = {}): Promise<PolicyDir> {
  let names: string[]
  let links = false
  try {
    const entries = (await readdir(dir, { withFileTypes: true })).filter((e) => isPolicyFileName(e.name))
    links = entries.some((e) => e.isSymbolicLink())
    names = entries.map((e) => e.name).sort()
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code
    if (code === 'ENOENT') return { dir, missing: true, files: [], hash: hashFiles([]), problems: [] }
    return { dir, missing: false, files: [], hash: hashFiles([]), problems: [{ file: dir, line: 1, col: 1, key: '', message: `cannot read the policy dir: ${code ?? String(err)}` }] }
  }
  const problems: SourceProblem[] = []
  if (names.length > MAX_FILES) {
    problems.push({ file: dir, line: 1, col: 1, key: '', message: `${names.length} policy files, more than the limit of ${MAX_FILES}` })
    names = names.slice(0, MAX_FILES)
  }
  const files: PolicyFile[] = []
  const cache = opts.statCache
  // Stats in parallel (the libuv pool does them anyway); reads only for what changed.
  const paths = names.map((name) => join(dir, name))
  const narrow = !opts.fresh && !links && cache && opts.changed ? opts.changed : undefined
  const kept = paths.map((path, i) => (narrow && !narrow.has(names[i]!) ? cache?.peek(path) : undefined))
  const stats = await Promise.all(paths.map((path, i) => (kept[i] ? undefined : stat(path, { bigint: true }).catch((err: unknown) => err as Error))))
  for (const [i, path] of paths.entries()) {
    const known = kept[i]
    if (known) {
      files.push(known)
      continue
    }
    const st = stats[i]!
    try {
      if (st instanceof Error) throw st
      if (!st.isFile()) continue
      const id = `${st.dev}:${st.ino}:${st.size}:${st.mtimeNs}:${st.ctimeNs}`
      const same = opts.fresh ? undefined : cache?.get(path, id)
      if (same) {
        files.push(same)
        continue
      }
      const text = await readSource(path, limits)
      const file = { path, text, sha256: createHash('sha256').update(text).digest('hex') }
      cache?.set(path, id, file)
      files.push(file)
    } catch (err) {
      // A file that vanished between readdir and open is part of a swap in progress; the
      // watcher reloads again once the writes settle.
      problems.push({ file: path, line: 1, col: 1, key: '', message: (err as Error).message.replace(`${path}: `, '').replace(/^ENOENT: .*/, 'cannot open: ENOENT') })
    }
  }
  cache?.retain(new Set(files.map((f) => f.path)))
  return { dir, missing: false, files, hash: hashFiles(files), problems }
}

export function hashFiles(files: readonly Pick<PolicyFile, 'path' | 'sha256'>[]): string {
  const h = createHash('sha256')
  for (const f of files) h.update(`${f.path.split('/').pop()}\0${f.sha256}\0`)
  return h.digest('hex')
}

/**
 * Parsed and schema-checked documents of unchanged files, by path and content hash. YAML
 * parsing is the most expensive stage of a reload (about 2 MB/s with positions kept), so a
 * reload re-parses only the files whose bytes changed. Documents are never mutated later,
 * so reusing them is safe.
 */
export class ParseCache {
  readonly #entries = new Map<string, { sha256: string; docs: LoadedDoc[]; problems: SourceProblem[] }>()

  get(file: Pick<PolicyFile, 'path' | 'sha256'>): { docs: LoadedDoc[]; problems: SourceProblem[] } | undefined {
    const e = this.#entries.get(file.path)
    return e && e.sha256 === file.sha256 ? e : undefined
  }

  set(file: Pick<PolicyFile, 'path' | 'sha256'>, docs: LoadedDoc[], problems: SourceProblem[]): void {
    this.#entries.set(file.path, { sha256: file.sha256, docs, problems })
  }

  /** Forgets files that are gone. */
  retain(files: readonly Pick<PolicyFile, 'path'>[]): void {
    const keep = new Set(files.map((f) => f.path))
    for (const path of this.#entries.keys()) if (!keep.has(path)) this.#entries.delete(path)
  }
}

/** Parses and schema-checks every document of every file. Never throws. */
export function parsePolicyFiles(files: readonly (Pick<PolicyFile, 'path' | 'text'> & { sha256?: string })[], limits: SourceLimits = DEFAULT_LIMITS, cache?: ParseCache): { docs: LoadedDoc[]; problems: SourceProblem[] } {
  const docs: LoadedDoc[] = []
  const problems: SourceProblem[] = []
  for (const file of files) {
    const cached = cache && file.sha256 !== undefined ? cache.get(file as PolicyFile) : undefined
    if (cached) {
      docs.push(...cached.docs)
      problems.push(...cached.problems)
      continue
    }
    const fileDocs: LoadedDoc[] = []
    const fileProblems: SourceProblem[] = []
    const fast = fastParseFile(file, limits)
    if (fast) fileDocs.push(...fast)
    else parseFile(file, limits, fileDocs, fileProblems)
    if (cache && file.sha256 !== undefined) cache.set(file as PolicyFile, fileDocs, fileProblems)
    docs.push(...fileDocs)
    problems.push(...fileProblems)
  }
  if (cache) cache.retain(files)
  return { docs, problems }
}

function parseFile(file: Pick<PolicyFile, 'path' | 'text'>, limits: SourceLimits, docs: LoadedDoc[], problems: SourceProblem[]): void {
  const parsed = parseSource(file.path, file.text, limits)
  problems.push(...parsed.problems)
  for (const src of parsed.docs) {
    if (src.value === undefined) continue // syntax problem, already reported
    if (src.value === null) continue // an empty document (a stray "---") holds no policy
    const checked = checkDocument(src.value)
    if (checked.ok) {
      docs.push(loadedDoc(checked.kind, checked.doc, file.path, (path, which) => positionOf(src, path, which)))
    } else if (checked.schema) {
      problems.push(...schemaProblems(src, checked.schema, checked.issues))
    } else {
      const at = positionOf(src, [])
      problems.push({ file: file.path, line: at.line, col: at.col, key: '', message: 'expected a mapping with apiVersion, kind, metadata and spec' })
    }
  }
}

/** One document's value against the envelope, then its kind's schema. Shared by both parsers. */
function checkDocument(value: unknown):
  | { ok: true; kind: Kind; doc: DocOf<Kind> }
  | { ok: false; schema?: z.ZodType; issues: readonly z.core.$ZodIssue[] } {
  if (typeof value !== 'object' || value === null || Array.isArray(value)) return { ok: false, issues: [] }
  const envelope = EnvelopeSchema.safeParse(value)
  if (!envelope.success) return { ok: false, schema: EnvelopeSchema, issues: envelope.error.issues }
  const schema = KIND_SCHEMAS[envelope.data.kind] as z.ZodType
  const result = schema.safeParse(value)
  if (!result.success) return { ok: false, schema, issues: result.error.issues }
  return { ok: true, kind: envelope.data.kind, doc: result.data as DocOf<Kind> }
}

function loadedDoc(kind: Kind, doc: DocOf<Kind>, file: string, locate: LoadedDoc['locate']): LoadedDoc {
  const ns = 'namespace' in doc.metadata ? `${doc.metadata.namespace}/` : ''
  return { kind, key: `${kind}/${ns}${doc.metadata.name}`, doc, file, locate }
}

// Files the fast path leaves to the position-keeping parser. Anchors, aliases and tags: only
// `yaml` bounds alias expansion. Directives (%YAML 1.1 changes number syntax), binary and
// signed hex integers and "+.5": the two parsers read these differently. Conservative: a
// match inside a string only costs speed.
const NOT_FAST = [/(^|[\s:[{,-])[&*!]/m, /^%/m, /(^|[\s:[{,])[-+]?0[bBxX]/m, /(^|[\s:[{,])[-+]\./m]

/**
 * The fast path: js-yaml (about 7x faster here than `yaml` with positions, see BENCHMARKS.md)
 * for a file that is entirely valid. Positions are found lazily, by re-parsing the file with
 * `yaml`, only if a later stage reports a problem in it. Anything unusual (node properties,
 * a syntax error, a document that fails its schema) returns undefined, and the caller runs
 * the position-keeping path, whose messages name file:line:col. Both use the YAML 1.2 core
 * schema; the fuzz test checks that they agree on every document both accept.
 */
export function fastParseFile(file: Pick<PolicyFile, 'path' | 'text'>, limits: SourceLimits): LoadedDoc[] | undefined {
  if (NOT_FAST.some((re) => re.test(file.text))) return undefined
  let values: unknown[]
  try {
    values = jsYaml.loadAll(file.text, undefined, { schema: jsYaml.CORE_SCHEMA, filename: file.path })
  } catch {
    return undefined
  }
  let located: ReturnType<typeof parseSource> | undefined
  const out: LoadedDoc[] = []
  for (const [index, value] of values.entries()) {
    if (value === null || value === undefined) continue
    const checked = checkDocument(value)
    if (!checked.ok) return undefined
    out.push(loadedDoc(checked.kind, checked.doc, file.path, (path, which) => {
      located ??= parseSource(file.path, file.text, limits)
      const src = located.docs[index]
      return src ? positionOf(src, path, which) : { line: 1, col: 1 }
    }))
  }
  return out
}
