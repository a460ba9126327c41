// The workload programs (scripts/netns/workloads) run as the workloads' own uids, so those
// uids must be able to run Node and read the scripts. A checkout under /root (mode 0700 on
// Debian) is out of their reach: then the test hosts run them from readable mirrors
// (scripts/netns/readable.ts, used by every TestHost command run as another uid).
import { dirname, join } from 'node:path'
import { run } from '../netns/exec.ts'
import { othersCanRead, readableArgv } from '../netns/readable.ts'

export interface Programs {
  readonly node: string
  readonly server: string
  readonly client: string
  readonly tally: string
  /** Run from readable mirrors, because the uids cannot reach the originals. */
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

export async function workloadPrograms(uids: readonly number[]): Promise<Programs> {
  const p = { node: process.execPath, server: join(WORKLOADS, SCRIPTS.server), client: join(WORKLOADS, SCRIPTS.client), tally: join(WORKLOADS, SCRIPTS.tally) }
  const files = [p.node, p.server, p.client, p.tally]
  for (const uid of uids) {
    // What a host will run as that uid, mirrors and all (without tap's NODE_OPTIONS hooks).
    const argv = readableArgv([p.node, '-e', 'for (const f of process.argv.slice(1)) require("node:fs").accessSync(f, 4)', p.server, p.client, p.tally])
    const res = await run('setpriv', [`--reuid=${uid}`, `--regid=${uid}`, '--clear-groups', '--', 'env', '-u', 'NODE_OPTIONS', ...argv])
    if (res.code !== 0) throw new Error(`uid ${uid} cannot run ${argv[0]} (is ${dirname(argv[0]!)} on a noexec mount? set TMPDIR to another folder): ${res.stderr.trim().slice(0, 300)}`)
  }
  return { ...p, copied: !files.every(othersCanRead) }
}
