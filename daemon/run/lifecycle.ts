// Start and stop, in one readable order. Start: config → logger → metrics → admin bound →
// policy → certificates for its local workloads → mesh listeners bound → iptables synced →
// ready. Stop: not ready → stop accepting → in-flight work finishes up to drainSeconds →
// whatever remains is destroyed. Stop: not ready → stop accepting → let in-flight work finish up to drainSeconds →
// destroy what remains. Later components (policy, certificates, data listeners) slot into
// these two sequences, never elsewhere.
import type { AddressInfo } from 'node:net'
import type { DestinationStream } from 'pino'
import { registerCerts } from '../admin/certs.ts'
import { registerConfigDump } from '../admin/config-dump.ts'
import { registerCoreRoutes } from '../admin/core-routes.ts'
import { AdminServer } from '../admin/server.ts'
import { loadNodeConfig } from '../config/load.ts'
import type { NodeConfig } from '../config/schema.ts'
import { createLogger, type RootLogger } from '../log/logger.ts'
import { createMetrics, type Metrics } from '../metrics/registry.ts'
import type { PolicyWatcher, ReloadEvent } from '../../policy/watcher.ts'
import { createCertificates, type Certificates } from './certificates.ts'
import { DataPlane } from './data-plane.ts'
import { IptablesSync } from './iptables-sync.ts'
import { createPolicyWatcher } from './policy-reload.ts'
import { Readiness } from './readiness.ts'

export interface DaemonOptions {
  readonly configPath: string
  /** Where logs go; stdout when absent. */
  readonly logDest?: DestinationStream
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
  #stopping: Promise<void> | undefined

  private constructor(config: NodeConfig, log: RootLogger, metrics: Metrics, readiness: Readiness, admin: AdminServer, adminAddress: AddressInfo, policy: PolicyWatcher, certificates: Certificates, dataPlane: DataPlane) {
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
    const metrics = createMetrics()
    const readiness = new Readiness(['listeners', 'policy', 'certificates', 'iptables'])
    const policy = createPolicyWatcher(config, metrics, log.component('policy'), readiness)
    const certificates = createCertificates(config, metrics, log.component('certs'), readiness)
    const admin = new AdminServer({ ...config.admin, port: config.ports.admin, log: log.component('admin') })
    registerCoreRoutes(admin, readiness, metrics)
    registerConfigDump(admin, config, policy)
    registerCerts(admin, certificates.manager)
    const adminAddress = await admin.listen()
    const dataPlane = new DataPlane(config, certificates, metrics, log.component('dataplane'), () => policy.current)
    const iptables = new IptablesSync(config, metrics.registry, log.component('iptables'), readiness)
    try {
      // A bad policy at start does not stop the daemon: /ready stays 503 ("policy") and the
      // watcher installs the first good version as soon as it is written.
      await policy.start()
      // Certificate problems are reported the same way: /ready waits for "certificates" and
      // the cert dir is watched. A new snapshot changes the set of local identities.
      policy.on('snapshot', (s) => {
        certificates.follow(s).catch((err: unknown) => log.component('certs').error({ err }, 'certificate sync failed'))
        void dataPlane.follow(s, () => iptables.sync(s))
      })
      await certificates.follow(policy.current)
      // Listeners before iptables: a redirect must never point at a port nobody listens on.
      await dataPlane.start(policy.current)
      readiness.markReady('listeners')
      await iptables.sync(policy.current)
    } catch (err) {
      // Not a policy or certificate problem (those are reported, not thrown), e.g. a port in
      // use: release what is bound.
      await policy.close()
      await certificates.manager.close()
      dataPlane.destroy()
      admin.destroy()
      log.flush()
      throw err
    }
    const run = log.component('run')
    if (readiness.ready) run.info({ admin: `${adminAddress.address}:${adminAddress.port}`, config: opts.configPath, generation: policy.current?.generation }, 'hostmesh ready')
    else run.warn({ waitingFor: readiness.status().waitingFor }, 'hostmesh started but not ready')
    return new Daemon(config, log, metrics, readiness, admin, adminAddress, policy, certificates, dataPlane)
  }

  /** SIGHUP: re-read policy and certificate files now. */
  async reload(reason: string): Promise<ReloadEvent> {
    const [event] = await Promise.all([this.policy.reload(reason), this.certificates.manager.reload(reason)])
    return event
  }

  /** Graceful stop; calling it again returns the same promise. */
  stop(reason: string): Promise<void> {
    this.#stopping ??= this.#drain(reason)
    return this.#stopping
  }

  async #drain(reason: string): Promise<void> {
    const log = this.log.component('run')
    this.readiness.startDrain()
    log.info({ reason, drainSeconds: this.config.drainSeconds }, 'draining')
    await this.policy.close()
    // The mesh listeners stop accepting first and get the drain time for in-flight
    // connections; iptables rules stay (traffic fails closed while hostmesh is down).
    // The admin port closes last, so /ready can report the drain while it happens.
    const order: Closable[] = [
      { name: 'mesh listeners', close: () => this.#dataPlane.close(), destroy: () => this.#dataPlane.destroy() },
      { name: 'admin', close: () => this.#admin.close(), destroy: () => this.#admin.destroy() },
    ]
    for (const listener of order) {
      const closed = listener.close().then(() => true)
      const timedOut = new Promise<boolean>((resolve) => setTimeout(resolve, this.config.drainSeconds * 1000, false).unref())
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
