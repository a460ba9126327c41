// The listeners of the mesh path, brought up together and kept in step with the policy:
// HBONE (:15008), inbound plaintext (:15006), and one outbound listener per local workload.
// All are bound before /ready says "listeners". A snapshot swap adds and removes outbound
// listeners and re-checks open tunnels against the new AuthorizationPolicies.
import type { Snapshot } from '../../policy/snapshot.ts'
import type { NodeConfig } from '../config/schema.ts'
import { Counter } from 'prom-client'
import { Balancer } from '../balance/balancer.ts'
import { InboundPlaintextListener } from '../listeners/inbound-plaintext.ts'
import { OutboundListener } from '../listeners/outbound.ts'
import type { Logger } from '../log/logger.ts'
import { tcpMetrics } from '../metrics/istio-tcp.ts'
import type { Metrics } from '../metrics/registry.ts'
import { HboneClientPool } from '../tunnel/client-pool.ts'
import { HboneServer } from '../tunnel/server.ts'
import type { Certificates } from './certificates.ts'

export class DataPlane {
  readonly #config: NodeConfig
  readonly #log: Logger
  readonly #snapshot: () => Snapshot | undefined
  readonly #pool: HboneClientPool
  readonly #hbone: HboneServer
  readonly #plaintext: InboundPlaintextListener
  readonly #outbound = new Map<string, OutboundListener>()
  readonly #metrics: ReturnType<typeof tcpMetrics>
  readonly #balancer: Balancer
  #queue: Promise<void> = Promise.resolve()

  constructor(config: NodeConfig, certificates: Certificates, metrics: Metrics, log: Logger, snapshot: () => Snapshot | undefined) {
    this.#config = config
    this.#log = log
    this.#snapshot = snapshot
    this.#metrics = tcpMetrics(metrics.registry)
    const ejections = new Counter({ name: 'hostmesh_outlier_ejections_total', help: 'Endpoints ejected by outlier detection, by service port.', labelNames: ['service_port'], registers: [metrics.registry] })
    this.#balancer = new Balancer({
      ejected: (endpoint, servicePort, until) => {
        ejections.inc({ service_port: servicePort })
        log.warn({ endpoint, servicePort, until: new Date(until).toISOString() }, 'endpoint ejected by outlier detection')
      },
    })
    this.#pool = new HboneClientPool(certificates.manager, certificates.verifier)
    this.#hbone = new HboneServer({ host: '::', port: config.ports.hbone, certs: certificates.manager, verifier: certificates.verifier, snapshot, log: log.child({ listener: 'hbone' }), metrics: this.#metrics })
    this.#plaintext = new InboundPlaintextListener({ snapshot, log: log.child({ listener: 'inbound-plaintext' }), metrics: this.#metrics, registry: metrics.registry })
  }

  /** Binds every listener for `snapshot` (outbound ones for its local workloads). Throws if one cannot bind. */
  async start(snapshot: Snapshot | undefined): Promise<void> {
    await this.#hbone.listen()
    await this.#plaintext.listen(this.#config.ports.inboundPlaintext)
    await this.#add(this.#wanted(snapshot))
  }

  /**
   * After a snapshot swap, in the one safe order: bind the new outbound listeners, run
   * `between` (the iptables sync, so no rule ever points at a port nobody listens on), close
   * the listeners that are gone, re-check open connections. Serialised; never throws.
   */
  follow(snapshot: Snapshot, between: () => Promise<void> = async () => undefined): Promise<void> {
    this.#queue = this.#queue.then(async () => {
      const want = this.#wanted(snapshot)
      try {
        await this.#add(want)
      } catch (err) {
        this.#log.error({ generation: snapshot.generation, error: (err as Error).message }, 'could not bind an outbound listener')
      }
      await between()
      this.#removeStale(want)
      const revoked = this.#hbone.recheck(snapshot) + this.#plaintext.recheck(snapshot)
      if (revoked > 0) this.#log.warn({ revoked, generation: snapshot.generation }, 'closed open connections the new policy denies')
    })
    return this.#queue
  }

  #wanted(snapshot: Snapshot | undefined): Map<string, Snapshot['localWorkloads'][number]> {
    // Everything a listener was built from is in its key: a Workload edited in place (another
    // identity, another match) gets a new listener instead of keeping the old view.
    return new Map((snapshot?.localWorkloads ?? []).map((l) => [`${l.workload.key}#${l.outboundPort}#${l.workload.identity}#${l.workload.match.uid ?? l.workload.match.address}#${l.workload.name}`, l]))
  }

  async #add(want: ReadonlyMap<string, Snapshot['localWorkloads'][number]>): Promise<void> {
    for (const [k, { workload, outboundPort }] of want) {
      if (this.#outbound.has(k)) continue
      // The same workload edited in place keeps its port: its old listener makes way.
      for (const [ok, old] of this.#outbound) {
        if (old.port === outboundPort) {
          this.#outbound.delete(ok)
          await old.close()
        }
      }
      const l = new OutboundListener(workload, outboundPort, {
        snapshot: this.#snapshot, pool: this.#pool, balancer: this.#balancer, outboundTrafficPolicy: this.#config.outboundTrafficPolicy,
        log: this.#log.child({ listener: 'outbound', workload: workload.key }), metrics: this.#metrics,
      })
      await l.listen()
      this.#outbound.set(k, l)
    }
  }

  #removeStale(want: ReadonlyMap<string, unknown>): void {
    for (const [k, l] of this.#outbound) {
      if (want.has(k)) continue
      this.#outbound.delete(k)
      void l.close()
    }
  }

  /** Graceful: stop accepting everywhere; resolves when in-flight connections have ended. */
  async close(): Promise<void> {
    this.#pool.close()
    await Promise.all([this.#hbone.close(), this.#plaintext.close(), ...[...this.#outbound.values()].map((l) => l.close())])
  }

  destroy(): void {
    this.#hbone.destroy()
    this.#plaintext.destroy()
    for (const l of this.#outbound.values()) l.destroy()
    this.#pool.destroy()
  }
}
