// The workload programs (scripts/netns/workloads) run as the workloads' own uids, so those
// uids must be able to run Node and read the scripts. A checkout under /root (mode 0700 on
// Debian) is out of their reach: then Node and the scripts are copied into a folder of the
// demo's temp dir that anyone may read, and run from there (removed with the temp dir).
import { chmodSync, constants, copyFileSync, mkdirSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { run } from '../netns/exec.ts'

export interface Programs {
  readonly node: string
  readonly server: string
  readonly client: string
  readonly tally: string
  /** Copied to the temp dir because the uids could not reach the originals. */
  readonly copied: boolean
}

/** What tcp-client.ts prints. */
export interface ClientResult {
  readonly first: string | null
  readonly sent: number
  readonly echoed: number
  readonly error?: string
}

/** What tally-client.ts prints: connections by the first word the server said. */
export interface TallyResult {
  readonly counts: Readonly<Record<string, number>>
  readonly failed: number
}

const WORKLOADS = new URL('../netns/workloads/', import.meta.url).pathname
const SCRIPTS = { server: 'identify-server.ts', client: 'tcp-client.ts', tally: 'tally-client.ts' } as const

export async function workloadPrograms(uids: readonly number[], tempDir: string): Promise<Programs> {
  const here: Programs = { node: process.execPath, server: join(WORKLOADS, SCRIPTS.server), client: join(WORKLOADS, SCRIPTS.client), tally: join(WORKLOADS, SCRIPTS.tally), copied: false }
  if (await reachable(here, uids)) return here
  const dir = join(tempDir, 'workloads')
  // The temp dir itself stays unlistable by others: traverse only.
  chmodSync(tempDir, 0o711)
  mkdirSync(dir, { mode: 0o755 })
  chmodSync(dir, 0o755)
  const copy = (from: string, name: string): string => {
    const to = join(dir, name)
    copyFileSync(from, to, constants.COPYFILE_FICLONE)
    chmodSync(to, 0o755)
    return to
  }
  // No package.json up the tree of the copies: say they are ES modules.
  writeFileSync(join(dir, 'package.json'), '{"type": "module"}\n', { mode: 0o644 })
  const copied: Programs = { node: copy(process.execPath, 'node'), server: copy(here.server, SCRIPTS.server), client: copy(here.client, SCRIPTS.client), tally: copy(here.tally, SCRIPTS.tally), copied: true }
  if (!(await reachable(copied, uids))) throw new Error(`uids ${uids.join(', ')} cannot run ${copied.node} (is ${tempDir} on a noexec mount? set TMPDIR to another folder)`)
  return copied
}

async function reachable(p: Programs, uids: readonly number[]): Promise<boolean> {
  for (const uid of uids) {
    const res = await run('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', p.node, '-e', 'for (const f of process.argv.slice(1)) require("node:fs").accessSync(f, 4)', p.server, p.client, p.tally])
    if (res.code !== 0) return false
  }
  return true
}
