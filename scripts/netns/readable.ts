// Workloads run as their own uids, and a checkout may be one they cannot read (under /root,
// mode 0700). readableBy() gives a path to the same file that any uid can open: the path
// itself when every directory above it can be traversed and the file read by others;
// otherwise a hard link (a copy across filesystems) in a world-readable mirror under the
// system temp dir, made once and shared by every test process of that checkout. Only what a
// workload's argv names is mirrored: the node binary and the workload programs, which import
// nothing but node: modules.
import { createHash } from 'node:crypto'
import { chmodSync, copyFileSync, linkSync, mkdirSync, renameSync, statSync, type Stats } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join, parse, resolve } from 'node:path'

const OTHERS_X = 0o001
const OTHERS_R = 0o004

/** Whether a process of an unrelated uid can open `file` for reading. */
export function othersCanRead(file: string): boolean {
  let st: Stats
  try {
    st = statSync(file)
  } catch {
    return false
  }
  if (!(st.mode & OTHERS_R) || (st.isDirectory() && !(st.mode & OTHERS_X))) return false
  for (let dir = dirname(resolve(file)); ; dir = dirname(dir)) {
    if (!(statSync(dir).mode & OTHERS_X)) return false
    if (dir === parse(dir).root) return true
  }
}

/** `file`, or a mirror of it that any uid can read. Throws if `file` does not exist. */
export function readableBy(file: string): string {
  const abs = resolve(file)
  if (othersCanRead(abs)) return abs
  const st = statSync(abs)
  // One mirror per user and tmpdir; the file's path, size and mtime name its copy, so a
  // changed file gets a fresh one and concurrent test processes agree on the name.
  const key = createHash('sha256').update(`${abs}\0${st.size}\0${st.mtimeMs}`).digest('hex').slice(0, 16)
  const root = join(tmpdir(), `hostmesh-readable-${process.getuid?.() ?? 0}`)
  const target = join(root, key, parse(abs).base)
  if (othersCanRead(target)) return target
  mkdirSync(dirname(target), { recursive: true, mode: 0o755 })
  chmodSync(root, 0o755)
  chmodSync(dirname(target), 0o755)
  // Into place by rename, so no process ever runs a half-written copy.
  const partial = `${target}.${process.pid}.partial`
  try {
    linkSync(abs, partial)
  } catch {
    copyFileSync(abs, partial)
    chmodSync(partial, st.mode & 0o777)
  }
  renameSync(partial, target)
  if (!othersCanRead(target)) throw new Error(`${abs} is not readable by other users, and neither is its mirror ${target} (mode ${(st.mode & 0o777).toString(8)})`)
  return target
}

/**
 * `cmd` as another uid can run it: every argument naming an existing file that uid could not
 * open is replaced by its mirror. Arguments that are not files are left alone.
 */
export function readableArgv(cmd: readonly string[]): string[] {
  return cmd.map((arg) => {
    if (!arg.startsWith('/')) return arg
    try {
      return statSync(arg).isFile() ? readableBy(arg) : arg
    } catch {
      return arg
    }
  })
}
