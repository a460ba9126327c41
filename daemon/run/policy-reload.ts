// Connects the policy watcher to the rest of the daemon: readiness (first good policy),
// metrics (reload counts by result, generation, last success) and logs (every problem of a
// failed reload, one line each, with file:line:col).
import { Counter, Gauge } from 'prom-client'
import { fixedPorts, type NodeConfig } from '../config/schema.ts'
import type { Logger } from '../../base/logger.ts'
import type { Metrics } from '../metrics/registry.ts'
import { formatProblem } from '../../policy/errors.ts'
import { PolicyWatcher } from '../../policy/watcher.ts'
import type { Readiness } from './readiness.ts'

export const POLICY_RESYNC_MS = 10_000

/** How this node compiles policy: the same for the daemon and for `hostmesh iptables`. */
export function nodeCompileOptions(config: NodeConfig): { trustDomain: string; localNode: string; outboundBase: number; reservedPorts: number[] } {
  return { trustDomain: config.trustDomain, localNode: config.node.name, outboundBase: config.ports.outboundBase, reservedPorts: fixedPorts(config.ports) }
}

/** `restoredPorts`: the outbound ports workloads had before a restart (see compile.ts). */
export function createPolicyWatcher(config: NodeConfig, metrics: Metrics, log: Logger, readiness: Readiness, restoredPorts?: ReadonlyMap<string, number>): PolicyWatcher {
  const watcher = new PolicyWatcher({
    dir: config.policyDir,
    ...nodeCompileOptions(config),
    ...(restoredPorts && restoredPorts.size > 0 ? { restoredPorts } : {}),
    allowEmpty: config.allowEmptyPolicy,
    resyncMs: POLICY_RESYNC_MS,
  })
  const reloads = new Counter({ name: 'hostmesh_config_reloads_total', help: 'Policy reloads by result: success (new snapshot), failure (last good kept), unchanged (same bytes).', labelNames: ['result'], registers: [metrics.registry] })
  for (const result of ['success', 'failure', 'unchanged']) reloads.inc({ result }, 0)
  const generation = new Gauge({ name: 'hostmesh_config_generation', help: 'Generation of the policy snapshot in force (0: none yet).', registers: [metrics.registry] })
  const lastSuccess = new Gauge({ name: 'hostmesh_config_last_reload_success_timestamp_seconds', help: 'When the policy snapshot in force was loaded.', registers: [metrics.registry] })
  const lastOk = new Gauge({ name: 'hostmesh_config_last_reload_successful', help: '1 if the last policy reload that changed anything succeeded, else 0.', registers: [metrics.registry] })

  watcher.on('snapshot', (s) => {
    generation.set(s.generation)
    lastSuccess.set(Date.parse(s.createdAt) / 1000)
    readiness.markReady('policy')
  })
  watcher.on('reload', (e) => {
    reloads.inc({ result: e.result })
    if (e.result === 'unchanged') return log.debug({ reason: e.reason }, 'policy unchanged')
    lastOk.set(e.result === 'success' ? 1 : 0)
    if (e.result === 'success') {
      const s = watcher.current!
      log.info({ reason: e.reason, generation: s.generation, hash: s.hash, files: s.files.length, durationMs: Math.round(e.durationMs * 10) / 10 }, 'policy loaded')
    } else {
      log.error({ reason: e.reason, problems: e.problems.length, keptGeneration: watcher.current?.generation ?? null }, `policy reload failed; ${watcher.current ? 'the last good policy stays in force' : 'no policy is in force yet'}`)
      // `path`, not `key`: "key" is redacted everywhere, as it may be key material.
      for (const p of e.problems.slice(0, 100)) log.error({ file: p.file, line: p.line, col: p.col, path: p.key }, formatProblem(p))
    }
  })
  watcher.on('watchError', (err) => log.warn({ err }, 'policy file watching failed; changes are still picked up by the periodic re-read'))
  return watcher
}
