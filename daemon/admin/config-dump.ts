// /config_dump: what the daemon runs with. The node config (no secrets in it), the policy in
// force with its generation, hash and files, the last failed reload, and the compiled view.
import type { NodeConfig } from '../config/schema.ts'
import { formatProblem } from '../../policy/errors.ts'
import { toJSON } from '../../policy/dump.ts'
import type { PolicyWatcher } from '../../policy/watcher.ts'
import type { AdminServer } from './server.ts'

export function registerConfigDump(admin: AdminServer, config: NodeConfig, policy: PolicyWatcher): void {
  admin.route('GET', '/config_dump', () => {
    const s = policy.current
    const err = policy.lastError
    const { generation = 0, hash = null, createdAt = null, files = [], counts = null, ...compiled } = s ?? {}
    return {
      status: 200,
      body: {
        config,
        policy: {
          dir: config.policyDir,
          generation, hash, loadedAt: createdAt, files, counts,
          lastError: err ? { at: err.at, reason: err.reason, hash: err.hash, problems: err.problems.map(formatProblem) } : null,
          snapshot: s ? toJSON(compiled) : null,
        },
      },
    }
  })
}
