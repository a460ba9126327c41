// The daemon as systemd/hostmesh.service runs it: the compiled dist/ (the TypeScript sources
// cost 16–30 MiB more RSS through type stripping, BENCHMARKS.md "memory") with the unit's
// Environment= (NODE_OPTIONS, MALLOC_ARENA_MAX). The benches that report a daemon's CPU, RSS or
// latency measure it this way unless told otherwise.
import { execFile } from 'node:child_process'
import { cpSync, readFileSync, symlinkSync } from 'node:fs'
import { join } from 'node:path'
import { promisify } from 'node:util'

const ROOT = new URL('../../', import.meta.url).pathname

/** The unit's `Environment=KEY=VALUE` lines. */
export function unitEnvironment(): Record<string, string> {
  const out: Record<string, string> = {}
  for (const line of readFileSync(join(ROOT, 'systemd/hostmesh.service'), 'utf8').split('\n')) {
    const m = /^Environment=("?)([A-Z_]+)=(.*)\1\s*$/.exec(line)
    if (m) out[m[2]!] = m[3]!
  }
  return out
}

/** This process's environment without what the unit sets (Node's and glibc's defaults). */
export function withoutUnitEnvironment(): NodeJS.ProcessEnv {
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  delete env.MALLOC_ARENA_MAX
  return env
}

/** dist/ as `npm run build` makes it, in a scratch package that links this checkout's node_modules and addons; returns its cli.js. */
export async function buildDist(dir: string): Promise<string> {
  await promisify(execFile)(process.execPath, [join(ROOT, 'node_modules/typescript/bin/tsc'), '-p', join(ROOT, 'tsconfig.build.json'), '--outDir', join(dir, 'dist')])
  cpSync(join(ROOT, 'package.json'), join(dir, 'package.json'))
  symlinkSync(join(ROOT, 'node_modules'), join(dir, 'node_modules'))
  symlinkSync(join(ROOT, 'build'), join(dir, 'build'))
  return join(dir, 'dist/daemon/cli.js')
}
