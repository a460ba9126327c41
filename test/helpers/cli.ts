// Runs the real `hostmesh` executable (from source, on this Node 24) as a child process.
import { spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const CLI = fileURLToPath(new URL('../../daemon/cli.ts', import.meta.url))

export function hostmesh(args: readonly string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const res = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 })
  return { status: res.status, stdout: res.stdout, stderr: res.stderr }
}
