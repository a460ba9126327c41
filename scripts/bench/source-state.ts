// Which code a benchmark measured: the commit, and whether the tree had changes on top of it
// (an A/B made by editing a file shows as dirty, with the files named). Written into each
// results JSON so a figure can be traced back.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

export interface SourceState { head: string; dirty: string[] }

export async function sourceState(): Promise<SourceState> {
  const run = async (args: string[]): Promise<string> => (await promisify(execFile)('git', args, { cwd: new URL('../..', import.meta.url).pathname })).stdout
  try {
    const head = (await run(['rev-parse', '--short', 'HEAD'])).trim()
    const dirty = (await run(['status', '--porcelain', '--untracked-files=no'])).split('\n').filter(Boolean).map((l) => l.slice(3))
    return { head, dirty }
  } catch {
    return { head: 'unknown (not a git checkout)', dirty: [] }
  }
}
