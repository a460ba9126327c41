// The Debian programs a benchmark drives (servers, load generators, the proxies it compares
// against): the ones missing are installed with apt-get, as .ci/run installs what the tests
// need, so that `npm run bench -- NAME` works on a fresh Debian machine. Needs root.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)

async function onPath(cmd: string): Promise<boolean> {
  return execFileP('sh', ['-c', `command -v ${cmd}`]).then(() => true, () => false)
}

/**
 * `need` maps a command to its Debian package. Returns the packages it installed. Throws with
 * the apt-get command to run by hand when the install fails.
 */
export async function ensureDebianTools(need: Readonly<Record<string, string>>, log: (line: string) => void = (l) => console.log(l)): Promise<string[]> {
  const missing: string[] = []
  for (const [cmd, pkg] of Object.entries(need)) if (!(await onPath(cmd)) && !missing.includes(pkg)) missing.push(pkg)
  if (missing.length === 0) return []
  const env = { ...process.env, DEBIAN_FRONTEND: 'noninteractive' }
  log(`installing ${missing.join(' ')} with apt-get`)
  try {
    // The package lists may be absent or stale on a fresh machine; update once, then install.
    await execFileP('apt-get', ['update', '-qq'], { env, timeout: 300_000 })
    await execFileP('apt-get', ['install', '-y', '-qq', '--no-install-recommends', ...missing], { env, timeout: 600_000, maxBuffer: 16 * 1024 * 1024 })
  } catch (e) {
    const err = e as { stderr?: string; message?: string }
    throw new Error(`could not install ${missing.join(' ')}: ${(err.stderr ?? err.message ?? '').trim().split('\n').slice(-5).join('\n')}\nrun: apt-get update && apt-get install -y ${missing.join(' ')}`)
  }
  for (const [cmd, pkg] of Object.entries(need)) if (!(await onPath(cmd))) throw new Error(`${cmd} is still missing after installing ${pkg}`)
  return missing
}
