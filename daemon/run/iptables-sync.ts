// Keeps the capture rules in step with the local workloads: after every snapshot swap the
// rules are recomputed (a pure function) and applied only when their text changed. Counts
// syncs by result; /ready waits for the first successful one.
import { Counter, type Registry } from 'prom-client'
import type { Snapshot } from '../../policy/snapshot.ts'
import type { NodeConfig } from '../config/schema.ts'
import { applyCapture, captureInPlace } from '../intercept/iptables.ts'
import { captureInput, captureRules, uncapturable, type CaptureInput } from '../intercept/iptables-rules.ts'
import type { Logger } from '../../base/logger.ts'
import type { Readiness } from './readiness.ts'

export class IptablesSync {
  readonly #config: NodeConfig
  readonly #log: Logger
  readonly #readiness: Readiness
  readonly #syncs: Counter<'result'>
  #applied: string | undefined
  /** The snapshot whose rules are in the kernel (`#applied` is their text). */
  #appliedSnapshot: Snapshot | undefined
  /** The snapshot whose rules should be (differs after a failed sync). */
  #last: Snapshot | undefined
  #check: NodeJS.Timeout | undefined
  #queue: Promise<void> = Promise.resolve()

  constructor(config: NodeConfig, registry: Registry, log: Logger, readiness: Readiness) {
    this.#config = config
    this.#log = log
    this.#readiness = readiness
    this.#syncs = new Counter({ name: 'hostmesh_iptables_syncs_total', help: 'iptables capture rule syncs by result (success, failure, unchanged).', labelNames: ['result'], registers: [registry] })
    for (const result of ['success', 'failure', 'unchanged']) this.#syncs.inc({ result }, 0)
    if (!config.iptables.sync) {
      log.info('iptables sync is off (iptables.sync: false): capture rules are managed outside the daemon')
      readiness.markReady('iptables')
    }
  }

  /** Syncs for `snapshot`; calls are serialised. Never throws: a failure is logged and counted. */
  sync(snapshot: Snapshot | undefined): Promise<void> {
    if (!this.#config.iptables.sync || !snapshot) return Promise.resolve()
    this.#last = snapshot
    this.#check ??= setInterval(() => { this.#queue = this.#queue.then(() => this.#checkInPlace()) }, this.#config.iptables.checkInterval).unref()
    this.#queue = this.#queue.then(() => this.#syncOnce(snapshot))
    return this.#queue
  }

  close(): void {
    clearInterval(this.#check)
  }

  /**
   * Rules removed behind the daemon's back (a flush, a firewall reload, an uninstall run
   * elsewhere) would let traffic leave uncaptured while the text cache says all is well:
   * checked periodically (in the sync queue, so never against a sync under way), and
   * restored.
   */
  async #checkInPlace(): Promise<void> {
    if (this.#applied === undefined || !this.#appliedSnapshot || !this.#last) return
    const inPlace = await captureInPlace(this.#input(this.#appliedSnapshot)).catch(() => true)
    if (inPlace) return
    this.#log.warn('the capture rules were removed outside hostmesh; restoring them')
    this.#applied = undefined
    await this.#syncOnce(this.#last)
  }

  async #syncOnce(snapshot: Snapshot): Promise<void> {
    const input = this.#input(snapshot)
    for (const l of uncapturable(input)) {
      this.#log.error({ workload: l.workload.key, uid: input.daemonUid }, 'this workload has the daemon\'s own uid: its traffic is never captured (run hostmesh as its own user)')
    }
    const text = captureRules(input, 4) + captureRules(input, 6)
    if (text === this.#applied) {
      this.#syncs.inc({ result: 'unchanged' })
      return
    }
    try {
      await applyCapture(input)
      this.#applied = text
      this.#appliedSnapshot = snapshot
      this.#syncs.inc({ result: 'success' })
      this.#readiness.markReady('iptables')
      this.#log.info({ generation: snapshot.generation, workloads: snapshot.localWorkloads.length }, 'iptables capture rules synced')
    } catch (err) {
      this.#syncs.inc({ result: 'failure' })
      this.#log.error({ generation: snapshot.generation, code: (err as { code?: string }).code, error: (err as Error).message }, 'iptables sync failed; the rules in place stay')
    }
  }

  /** The rule input for `snapshot`: this daemon's uid is the one never captured. */
  #input(snapshot: Snapshot): CaptureInput {
    return captureInput(this.#config.ports, snapshot, process.getuid?.() ?? 0)
  }
}
