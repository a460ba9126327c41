// Start and stop, in one readable order. Start: config → logger → metrics → what systemd
// passed in (sockets, notify socket) → admin bound → policy → certificates for its local
// workloads → mesh listeners bound → iptables synced → ready (and READY=1). Stop: not ready
// (STOPPING=1) → stop accepting → in-flight work finishes, all within one drainSeconds
// deadline → whatever remains is destroyed. Components slot into these two sequences, never
// elsewhere.
import type { AddressInfo } from 'node:net'
import type { DestinationStream } from 'pino'
import { Gauge } from 'prom-client'
import { registerCerts } from '../admin/certs.ts'
import { clustersView, registerClusters } from '../admin/clusters.ts'
import { registerConfigDump } from '../admin/config-dump.ts'
import { registerCoreRoutes } from '../admin/core-routes.ts'
import { registerLogging } from '../admin/logging.ts'
import { AdminServer } from '../admin/server.ts'
import { registerStats } from '../admin/stats.ts'
import { loadNodeConfig } from '../config/load.ts'
import type { NodeConfig } from '../config/schema.ts'
import { createLogger, type RootLogger } from '../log/logger.ts'
import { registerLogMetrics } from '../log/metrics.ts'
import { createMetrics, type Metrics } from '../metrics/registry.ts'
import type { Snapshot } from '../../policy/snapshot.ts'
import type { PolicyWatcher, ReloadEvent } from '../../policy/watcher.ts'
import { createCertificates, type Certificates } from './certificates.ts'
import { DataPlane } from './data-plane.ts'
import { IptablesSync } from './iptables-sync.ts'
import { MemoryRelief } from './memory.ts'
import { loadMallocTrim } from './malloc-trim.ts'
import { createPolicyWatcher } from './policy-reload.ts'
import { Readiness } from './readiness.ts'
import { capturedPorts } from '../intercept/iptables.ts'
import { InheritedSockets } from '../systemd/listen-fds.ts'
import { SocketHandover } from '../systemd/handover.ts'
import { ServiceManager } from '../systemd/notify.ts'
import { ListenerBindError } from '../listeners/errors.ts'
import { withReusePort } from '../listeners/bind.ts'
import { LocalHostState } from '../limits/host-state.ts'
import { SharedHostState } from '../limits/shared-host-state.ts'
import { enableRequestMigration, workerCount } from '../workers/count.ts'
import { mergeClusters, mergeListeners } from '../workers/merge.ts'
import { WorkerThreads } from '../workers/threads.ts'

export interface DaemonOptions {
  readonly configPath: string
  /** Where logs go; stdout when absent. */
  readonly logDest?: DestinationStream
  /**
   * The service manager's variables (LISTEN_FDS, LISTEN_FDNAMES, NOTIFY_SOCKET, WATCHDOG_USEC):
   * process.env when absent. They are read once and removed, so children never see them.
   */
  readonly env?: NodeJS.ProcessEnv
}

/** A listener as the lifecycle sees it: graceful close, and destroy for what outlives the drain. */
interface Closable {
  readonly name: string
  close(): Promise<void>
  destroy(): void
}

export class Daemon {
  readonly config: NodeConfig
  readonly log: RootLogger
  readonly metrics: Metrics
  readonly readiness: Readiness
  readonly adminAddress: AddressInfo
  readonly policy: PolicyWatcher
  readonly certificates: Certificates
  readonly #admin: AdminServer
  readonly #dataPlane: DataPlane
  readonly #manager: ServiceManager
  readonly #iptables: IptablesSync
  readonly #memory: MemoryRelief
  /** The data-path threads besides this one; undefined with `workers: 1`. */
  readonly workers: WorkerThreads | undefined
  #stopping: Promise<void> | undefined

  private constructor(config: NodeConfig, log: RootLogger, metrics: Metrics, readiness: Readiness, admin: AdminServer, adminAddress: AddressInfo, policy: PolicyWatcher, certificates: Certificates, dataPlane: DataPlane, manager: ServiceManager, iptables: IptablesSync, memory: MemoryRelief, workers: WorkerThreads | undefined) {
    this.workers = workers
    this.#manager = manager
    this.#memory = memory
    this.#iptables = iptables
    this.config = config
    this.log = log
    this.metrics = metrics
    this.readiness = readiness
    this.#admin = admin
    this.adminAddress = adminAddress
    this.policy = policy
    this.certificates = certificates
    this.#dataPlane = dataPlane
  }

  static async start(opts: DaemonOptions): Promise<Daemon> {
    const config = await loadNodeConfig(opts.configPath)
    const log = createLogger(config.logLevel, { node: config.node.name }, opts.logDest)
    // Worker threads (docs/workers.md): the main thread's data plane is the first; the others
    // start once it is bound, with the policy and certificates it has.
    const workers = workerCount(config.workers)
    let threads: WorkerThreads | undefined
    const metrics = createMetrics(workers > 1 ? () => threads?.ask('metrics') ?? Promise.resolve([]) : undefined)
    new Gauge({
      name: 'hostmesh_workers', help: 'Data-path threads running now, the main thread included (node config `workers`).', registers: [metrics.registry],
      collect() { this.set(1 + (threads?.running.length ?? 0)) },
    })
    registerLogMetrics(metrics.registry, log)
    const readiness = new Readiness(['listeners', 'policy', 'certificates', 'iptables'])
    const env = opts.env ?? process.env
    const manager = new ServiceManager({ env, log: log.component('systemd') })
    const handover = new SocketHandover(InheritedSockets.fromEnv(env), manager, log.component('systemd'))
    manager.startWatchdog()
    // Workloads keep the outbound ports their iptables rules still point at: the live rules
    // say which, and under systemd the names of the stored sockets (those win).
    const captured = await capturedPorts().catch(() => new Map<string, number>())
    const restoredPorts = new Map([...captured, ...handover.outboundPorts()])
    const policy = createPolicyWatcher(config, metrics, log.component('policy'), readiness, restoredPorts)
    // systemd learns what /ready says: READY=1 once every condition holds, STATUS= otherwise.
    readiness.onChange((s) => {
      if (s.ready) manager.ready(statusLine(readiness, policy))
      else if (!s.draining) manager.status(statusLine(readiness, policy))
    })
    const certificates = createCertificates(config, metrics, log.component('certs'), readiness)
    const admin = new AdminServer({ ...config.admin, port: config.ports.admin, log: log.component('admin'), registry: metrics.registry })
    registerCoreRoutes(admin, readiness, metrics)
    registerConfigDump(admin, config, policy)
    registerCerts(admin, certificates.manager)
    registerLogging(admin, log, (level) => threads?.setLevel(level))
    const adminAddress = await admin.listen(handover)
    // "listeners" holds when this thread and every worker thread have bound theirs.
    const bound = { main: false, threads: true }
    const reportBound = (): void => (bound.main && bound.threads ? readiness.markReady('listeners') : readiness.markNotReady('listeners'))
    const hostState = workers > 1 ? new SharedHostState() : new LocalHostState()
    const dataPlane = new DataPlane(config, certificates, metrics, log.component('dataplane'), () => policy.current, workers > 1 ? withReusePort(handover) : handover,
      (ok) => { bound.main = ok; reportBound() }, { hostState, workers, ejected: (endpoint, untilMs) => threads?.ejectedElsewhere(endpoint, untilMs) })
    // The stored outbound sockets are settled once a policy has bound its listeners: at start,
    // or with the first good policy if the one on disk is broken.
    let settled = false
    const settle = (): void => {
      if (settled) return
      settled = true
      handover.releaseOutbound()
      dataPlane.storeAll()
    }
    const clusters = (): ReturnType<typeof clustersView> => clustersView(policy.current, dataPlane.balancer, { breakers: dataPlane.breakers, retryBudgetRemaining: (service) => dataPlane.retryBudgets.remaining(service) })
    registerClusters(admin, async () => (threads ? mergeClusters([clusters(), ...await threads.ask('clusters')]) : clusters()))
    registerStats(admin, {
      node: config.node.name, policy, certs: certificates.manager, registry: metrics.registry, exported: () => metrics.exported(),
      listeners: async () => (threads ? mergeListeners([await dataPlane.listeners(), ...await threads.ask('listeners')]) : dataPlane.listeners()),
    })
    const iptables = new IptablesSync(config, metrics.registry, log.component('iptables'), readiness)
    try {
      // A bad policy at start does not stop the daemon: /ready stays 503 ("policy") and the
      // watcher installs the first good version as soon as it is written.
      await policy.start()
      // Certificate problems are reported the same way: /ready waits for "certificates" and
      // the cert dir is watched.
      const first = policy.current
      await certificates.follow(first)
      // Listeners before iptables: a redirect must never point at a port nobody listens on.
      await dataPlane.start(first)
      handover.releaseFixed()
      if (first) settle()
      if (workers > 1 && hostState instanceof SharedHostState) {
        await enableRequestMigration(log.component('workers'))
        threads = new WorkerThreads({
          threads: workers - 1, config, hostState: hostState.buffer, log: log.component('workers'), forward: (lines) => log.forward(lines), registry: metrics.registry,
          snapshot: () => policy.current, certs: () => certificates.manager.leaves(),
          bound: (ok) => { bound.threads = ok; reportBound() }, ejected: (endpoint, untilMs) => dataPlane.ejectedElsewhere(endpoint, untilMs),
        })
        const t = threads
        certificates.manager.on('published', () => t.certsChanged())
        certificates.manager.on('unavailable', () => t.certsChanged())
        await t.start()
      }
      await iptables.sync(first)
      // From here on every snapshot is followed: its identities, listeners, iptables. One that
      // came while starting (a save during start-up) is followed now, after the start's own.
      const follow = (s: Snapshot): void => {
        if (readiness.ready) manager.status(statusLine(readiness, policy))
        threads?.follow(s)
        certificates.follow(s).then(() => threads?.certsChanged(), (err: unknown) => log.component('certs').error({ err }, 'certificate sync failed'))
        void dataPlane.follow(s, () => iptables.sync(s)).then(settle)
      }
      policy.on('snapshot', follow)
      if (policy.current && policy.current !== first) follow(policy.current)
    } catch (err) {
      // Not a policy or certificate problem (those are reported, not thrown), e.g. a port in
      // use: release what is bound.
      await policy.close()
      await certificates.manager.close()
      iptables.close()
      threads?.destroy()
      dataPlane.destroy()
      admin.destroy()
      manager.stopWatchdog()
      log.flush()
      throw bindError(err)
    }
    const run = log.component('run')
    if (readiness.ready) run.info({ workers, admin: `${adminAddress.address}:${adminAddress.port}`, adminSocket: config.admin.socket, config: opts.configPath, generation: policy.current?.generation }, 'hostmesh ready')
    else run.warn({ waitingFor: readiness.status().waitingFor }, 'hostmesh started but not ready')
    const memoryLog = log.component('memory')
    // malloc's arenas are the process's: the main thread trims for every worker thread too.
    const malloc = loadMallocTrim()
    if (malloc instanceof Error) memoryLog.warn({ err: malloc }, 'malloc_trim unavailable: memory malloc freed stays with the process')
    // The process's RSS holds every thread's pooled pages: this thread decides, and each worker thread collects in the same round.
    const others = threads
    const memory = new MemoryRelief({ activity: () => dataPlane.activity, log: memoryLog, registry: metrics.registry, malloc: malloc instanceof Error ? undefined : malloc, others: others && (() => others.ask('relieve')) })
    memory.start()
    return new Daemon(config, log, metrics, readiness, admin, adminAddress, policy, certificates, dataPlane, manager, iptables, memory, threads)
  }

  /** SIGHUP: re-read policy and certificate files now. */
  async reload(reason: string): Promise<ReloadEvent> {
    this.#manager.reloading()
    try {
      const [event] = await Promise.all([this.policy.reload(reason), this.certificates.manager.reload(reason)])
      return event
    } finally {
      // RELOADING=1 holds the unit in "reloading" until READY=1, whatever /ready says now.
      this.#manager.reloaded(statusLine(this.readiness, this.policy))
    }
  }

  /** Graceful stop; calling it again returns the same promise. */
  stop(reason: string): Promise<void> {
    this.#stopping ??= this.#drain(reason)
    return this.#stopping
  }

  async #drain(reason: string): Promise<void> {
    const log = this.log.component('run')
    // 1. /ready turns false (and systemd hears STOPPING=1) before anything stops accepting.
    this.readiness.startDrain()
    // The drain, plus time to close what remains and exit.
    this.#manager.stopping(`draining (${reason}), up to ${this.config.drainSeconds}s`, (this.config.drainSeconds + 10) * 1000)
    log.info({ reason, drainSeconds: this.config.drainSeconds }, 'draining')
    await this.policy.close()
    this.#iptables.close()
    this.#memory.stop()
    // 2.–4. The mesh listeners stop accepting first, and in-flight connections get what is
    // left of one drain deadline; then the rest is destroyed. iptables rules stay (traffic
    // fails closed while hostmesh is down), and sockets that systemd holds (hostmesh.socket,
    // the fd store) keep queueing connections for the next start. The admin port closes
    // last, so /ready reports the drain while it happens.
    const deadline = Date.now() + this.config.drainSeconds * 1000
    const order: Closable[] = [
      {
        name: 'mesh listeners',
        close: async () => { await Promise.all([this.#dataPlane.close(), this.workers?.close()]) },
        destroy: () => { this.workers?.destroy(); this.#dataPlane.destroy() },
      },
      { name: 'admin', close: () => this.#admin.close(), destroy: () => this.#admin.destroy() },
    ]
    for (const listener of order) {
      const closed = listener.close().then(() => true)
      const timedOut = new Promise<boolean>((resolve) => setTimeout(resolve, Math.max(0, deadline - Date.now()), false).unref())
      if (!(await Promise.race([closed, timedOut]))) {
        log.warn({ listener: listener.name }, 'drain time is up; closing remaining connections')
        listener.destroy()
      }
    }
    await this.certificates.manager.close()
    log.info('stopped')
    this.log.flush()
  }
}

/** systemd's STATUS= line: what /ready says, in a few words. */
function statusLine(readiness: Readiness, policy: PolicyWatcher): string {
  const { ready, waitingFor } = readiness.status()
  if (!ready) return `waiting for ${waitingFor.join(', ')}`
  const s = policy.current
  return s ? `ready: policy generation ${s.generation}, ${s.localWorkloads.length} local workload(s)` : 'ready'
}

/** A port that cannot be bound gets its own error (and exit code): restarting may not help. */
function bindError(err: unknown): unknown {
  const e = err as NodeJS.ErrnoException & { port?: number; address?: string }
  if (e?.code === 'EADDRINUSE' || e?.code === 'EACCES' || e?.code === 'EADDRNOTAVAIL') {
    return new ListenerBindError(`cannot listen on ${e.address ?? '?'}:${e.port ?? '?'}: ${e.code} (another process holds the port, or hostmesh.socket lists ports the node config does not)`, { cause: err })
  }
  return err
}
