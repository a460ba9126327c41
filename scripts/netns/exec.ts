// Small wrappers around child processes for the harness: async for normal work, sync for the
// exit-time cleanup (an 'exit' handler cannot await).
import { execFile, execFileSync } from 'node:child_process'

export interface ExecResult {
  readonly code: number
  readonly stdout: string
  readonly stderr: string
}

export function run(cmd: string, args: readonly string[], opts: { timeoutMs?: number; input?: string; env?: NodeJS.ProcessEnv } = {}): Promise<ExecResult> {
  return new Promise((resolve) => {
    const child = execFile(cmd, [...args], { timeout: opts.timeoutMs ?? 30_000, maxBuffer: 16 * 1024 * 1024, env: opts.env ?? process.env }, (err, stdout, stderr) => {
      const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? (err as { code: number }).code : 1) : 0
      resolve({ code, stdout, stderr: stderr || (err && code !== 0 && !stderr ? err.message : stderr) })
    })
    if (opts.input !== undefined) child.stdin?.end(opts.input)
  })
}

export async function mustRun(cmd: string, args: readonly string[], opts: { timeoutMs?: number; input?: string } = {}): Promise<string> {
  const res = await run(cmd, args, opts)
  if (res.code !== 0) throw new Error(`${cmd} ${args.join(' ')} failed (exit ${res.code}): ${res.stderr.trim()}`)
  return res.stdout
}

/** Best effort, synchronous: for cleanup paths where an error must not stop the rest. */
export function runSync(cmd: string, args: readonly string[]): string {
  try {
    return execFileSync(cmd, [...args], { stdio: ['ignore', 'pipe', 'ignore'], timeout: 10_000 }).toString()
  } catch {
    return ''
  }
}
