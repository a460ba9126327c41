// Runs the real `hostmesh` executable (from source, on this Node 24) as a child process.
import { spawn, spawnSync } from 'node:child_process'
import { fileURLToPath } from 'node:url'

export const CLI = fileURLToPath(new URL('../../daemon/cli.ts', import.meta.url))

export function hostmesh(args: readonly string[], env: NodeJS.ProcessEnv = {}): { status: number | null; stdout: string; stderr: string } {
  const res = spawnSync(process.execPath, [CLI, ...args], { encoding: 'utf8', env: { ...process.env, ...env }, timeout: 20_000 })
  return { status: res.status, stdout: res.stdout, stderr: res.stderr }
}

/** The same, without blocking this process's event loop (for a daemon running in the test process). */
export function hostmeshAsync(args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<{ status: number | null; stdout: string; stderr: string }> {
  const child = spawn(process.execPath, [CLI, ...args], { env: { ...process.env, ...env }, timeout: 20_000 })
  let stdout = ''
  let stderr = ''
  child.stdout.on('data', (d: Buffer) => { stdout += d.toString() })
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  return new Promise((resolve) => child.on('close', (status) => resolve({ status, stdout, stderr })))
}
