// Workloads run as their own uids, and a checkout may be one they cannot read (under /root,
// mode 0700). readableBy() gives a path to the same file that any uid can open: the path
// itself when every directory above it can be traversed and the file read by others;
// otherwise a hard link (a copy across filesystems) in this process's own world-readable
// mirror under the system temp dir. Only what a workload's argv names is mirrored: the node
// binary and the workload programs, which import nothing but node: modules.
import { createHash } from 'node:crypto'
import { chmodSync, constants, copyFileSync, existsSync, linkSync, mkdirSync, mkdtempSync, rmSync, statSync, type Stats } from 'node:fs'
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

let mirrorDir: string | undefined

/**
 * This process's mirror: a fresh directory of an unpredictable name (mkdtemp), world-readable,
 * removed at exit. Never a fixed path: root must not run, or write through, something another
 * user put in /tmp first.
 */
function mirror(): string {
  if (mirrorDir) return mirrorDir
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-readable-'))
  chmodSync(dir, 0o755)
  process.once('exit', () => rmSync(dir, { recursive: true, force: true }))
  return (mirrorDir = dir)
}

/** `file`, or a mirror of it that any uid can read. Throws if `file` does not exist. */
export function readableBy(file: string): string {
  const abs = resolve(file)
  if (othersCanRead(abs)) return abs
  const st = statSync(abs)
  // One link per file version (path, size, mtime): a changed file gets a fresh one.
  const key = createHash('sha256').update(`${abs}\0${st.size}\0${st.mtimeMs}`).digest('hex').slice(0, 16)
  const dir = join(mirror(), key)
  const target = join(dir, parse(abs).base)
  if (existsSync(target)) return target
  mkdirSync(dir, { mode: 0o755 })
  chmodSync(dir, 0o755)
  try {
    linkSync(abs, target)
  } catch {
    copyFileSync(abs, target, constants.COPYFILE_EXCL)
    chmodSync(target, st.mode & 0o777)
  }
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
