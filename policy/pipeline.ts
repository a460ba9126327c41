// The whole reload, in order: read → parse (positions) → schema → cross-references → compile
// → one frozen Snapshot. Shared by the daemon's watcher and `hostmesh validate`, so offline
// validation is exactly what the daemon would do. Never throws on policy content.
import { compile, type CompileOptions } from './compile.ts'
import type { SourceProblem } from './errors.ts'
import { indexDocs } from './index-docs.ts'
import { parsePolicyFiles, readPolicyDir, type ParseCache, type PolicyDir } from './load.ts'
import type { Snapshot } from './snapshot.ts'
import { DEFAULT_LIMITS, type SourceLimits } from './source.ts'
import { validateIndex } from './validate.ts'

export type BuildOptions = Omit<CompileOptions, 'hash' | 'files'> & { readonly limits?: SourceLimits; readonly cache?: ParseCache }

export type BuildResult =
  | { readonly ok: true; readonly snapshot: Snapshot; readonly dir: PolicyDir }
  | { readonly ok: false; readonly problems: readonly SourceProblem[]; readonly dir: PolicyDir }

export async function loadPolicy(dir: string, opts: BuildOptions): Promise<BuildResult> {
  return buildSnapshot(await readPolicyDir(dir, opts.limits ?? DEFAULT_LIMITS), opts)
}

export function buildSnapshot(dir: PolicyDir, opts: BuildOptions): BuildResult {
  try {
    const problems: SourceProblem[] = [...dir.problems]
    const parsed = parsePolicyFiles(dir.files, opts.limits ?? DEFAULT_LIMITS, opts.cache)
    problems.push(...parsed.problems)
    const { index, problems: dup } = indexDocs(parsed.docs)
    problems.push(...dup, ...validateIndex(index))
    // Compile only a policy with no problem at all: a snapshot is never partial.
    if (problems.length > 0) return { ok: false, problems: sortProblems(problems), dir }
    const perFile = new Map<string, number>()
    for (const d of parsed.docs) perFile.set(d.file, (perFile.get(d.file) ?? 0) + 1)
    const files = dir.files.map((f) => ({ path: f.path, sha256: f.sha256, documents: perFile.get(f.path) ?? 0 }))
    const { snapshot, problems: compileProblems } = compile(index, { ...opts, hash: dir.hash, files })
    if (!snapshot) return { ok: false, problems: sortProblems(compileProblems), dir }
    return { ok: true, snapshot, dir }
  } catch (err) {
    // A bug, not a policy problem; still reported as a problem so a reload can never crash
    // the daemon or install half a policy.
    return { ok: false, problems: [{ file: dir.dir, line: 1, col: 1, key: '', message: `internal error while loading policy: ${(err as Error).stack ?? String(err)}` }], dir }
  }
}

function sortProblems(problems: SourceProblem[]): SourceProblem[] {
  return problems.sort((a, b) => (a.file < b.file ? -1 : a.file > b.file ? 1 : a.line - b.line || a.col - b.col))
}
