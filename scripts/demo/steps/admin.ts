// Step 5: each host's admin port answers. It listens on 127.0.0.1 inside the host's network
// namespace, so from the machine it is reached through `ip netns exec`: the report prints
// those commands (they work while the demo runs; `--keep` keeps it running).
import { ADMIN_URL, CLI, type Mesh } from '../mesh.ts'
import { checker, type StepOutcome } from '../step.ts'

const PATHS = ['/ready', '/metrics', '/config_dump', '/certs', '/clusters', '/stats', '/logging'] as const

export interface AdminEntry {
  readonly node: string
  readonly netns: string
  /** Path → HTTP status it answered during the demo. */
  readonly answered: Readonly<Record<string, number>>
  readonly commands: readonly string[]
  /** `hostmesh status` for this host: the same admin port, summarised. */
  readonly status: string
}

export async function adminPorts(mesh: Mesh): Promise<StepOutcome<AdminEntry[]>> {
  const entries = await Promise.all(mesh.net.hosts.map(async (h): Promise<AdminEntry> => {
    const answered: Record<string, number> = {}
    for (const path of PATHS) answered[path] = (await mesh.admin(h.name, path)).status
    return {
      node: h.name, netns: h.netns, answered,
      commands: PATHS.map((p) => `ip netns exec ${h.netns} curl -s ${ADMIN_URL}${p}`),
      status: `ip netns exec ${h.netns} ${process.execPath} ${CLI} status`,
    }
  }))
  const { check, problems } = checker()
  for (const e of entries) {
    for (const [path, status] of Object.entries(e.answered)) check(status === 200, `${e.node} ${path} should answer 200; it answered ${status}`)
  }
  const answered = entries.flatMap((e) => Object.values(e.answered)).filter((s) => s === 200).length
  return { data: entries, lines: [`${answered} of ${entries.length * PATHS.length} admin endpoints answered 200 (${PATHS.join(' ')} on ${entries.map((e) => e.node).join(', ')})`], problems }
}
