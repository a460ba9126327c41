// The listeners of the mesh path, brought up together and kept in step with the policy:
// HBONE (:15008), inbound plaintext (:15006), and one outbound listener per local workload.
// All are bound before /ready says "listeners". A snapshot swap adds and removes outbound
// listeners and re-checks open tunnels against the new AuthorizationPolicies.
import type { Snapshot } from '../../policy/snapshot.ts'
import type { NodeConfig } from '../config/schema.ts'
import { Counter, Gauge } from 'prom-client'
import { Balancer } from '../balance/balancer.ts'
import { InboundPlaintextListener } from '../listeners/inbound-plaintext.ts'
import { NO_INHERITED_SOCKETS, type ListenerSockets } from '../listeners/bind.ts'
import { OutboundListener } from '../listeners/outbound.ts'
import type { ListenerView } from '../listeners/view.ts'
import { OUTBOUND_FD_PREFIX } from '../systemd/listen-fds.ts'
import type { Logger } from '../../base/logger.ts'
import { tcpMetrics } from '../metrics/istio-tcp.ts'
import type { Metrics } from '../metrics/registry.ts'
import { HboneClientPool } from '../tunnel/client-pool.ts'
import { HboneServer } from '../tunnel/server.ts'
import type { HboneLimits } from '../tunnel/admission.ts'
import { keepaliveOf } from '../tunnel/keepalive.ts'
import { relayedChunks } from '../tunnel/relay-gc.ts'
import { ConnectionTelemetry } from '../telemetry/connection.ts'
import { RequestTelemetry } from '../telemetry/request.ts'
import { httpMetrics } from '../metrics/istio-http.ts'
import { InboundHttp } from '../l7/inbound.ts'
import type { L7Limits } from '../l7/limits.ts'
import { OutboundHttp } from '../l7/outbound.ts'
import { FrontMetrics } from '../l7/front-metrics.ts'
import { LocalHostState, type HostState } from '../limits/host-state.ts'
import { RateLimiter } from '../l7/rate-limiter.ts'
import { CircuitBreakers } from '../limits/circuit-breaker.ts'
import { WorkloadLimits } from '../limits/workload-limits.ts'
import { DelayedRefusals } from '../l4/delayed-refusals.ts'
import { RetryBudgets } from '../limits/retry-budget.ts'
import { RetryMetrics } from '../l7/retry-metrics.ts'
import { MirrorMetrics } from '../l7/mirror-metrics.ts'
import { dialTcp } from '../net/dial.ts'
import { connectEndpoint } from '../net/connect-endpoint.ts'
import type { Activity } from './memory.ts'
import type { LeafContexts } from '../../certs/manager.ts'
import type { PeerVerifier } from '../../certs/tls.ts'

/** What the data path may do with certificates: serve and dial as local identities, and judge peers. Nothing signs. */
export interface DataPlaneCerts {
  readonly manager: LeafContexts
  readonly verifier: PeerVerifier
}

/** How a data plane takes part in a set of worker threads. */
export interface DataPlaneOptions {
  /** The limits that hold for the whole host: shared memory when there are worker threads. */
  readonly hostState?: HostState
  /** This thread ejected an endpoint (its balancer key) until `untilMs`: the other threads are told. */
  readonly ejected?: (endpoint: string, untilMs: number) => void
  /** Data-path threads in all (node config `workers`): each retry budget gets 1 / workers of its floor. */
  readonly workers?: number
}

export class DataPlane {
  readonly #config: NodeConfig
  readonly #log: Logger
  readonly #snapshot: () => Snapshot | undefined
  readonly #pool: HboneClientPool
  readonly #hbone: HboneServer
  readonly #plaintext: InboundPlaintextListener
  readonly #outbound = new Map<string, OutboundListener>()
  readonly #telemetry: ConnectionTelemetry
  readonly #outboundHttp: OutboundHttp
  readonly #inboundHttp: InboundHttp
  readonly #balancer: Balancer
  readonly #retryBudgets: RetryBudgets
  /** outbound.maxConnectionsPerWorkload / maxRequestsPerWorkload, for the host (shared with worker threads). */
  readonly #workloads: WorkloadLimits
  readonly #refusals: DelayedRefusals
  /** One count per destination service for both paths: maxConnections holds TCP ports and L7 upstream connections together. */
  readonly #breakers: CircuitBreakers
  readonly #sockets: ListenerSockets
  readonly #bound: (ok: boolean) => void
  /** Listeners that made way (removed, or edited in place) while connections are still open. */
  readonly #retired = new Set<OutboundListener>()
  /** Off until storeAll(): at start, inherited sockets are settled first (lifecycle.ts). */
  #storing = false
  #closed = false
  /** After a failed bind: follow the current snapshot again soon, not only on the next change. */
  #retry: NodeJS.Timeout | undefined
  #queue: Promise<void> = Promise.resolve()

  /**
   * `bound` hears whether every wanted listener is bound (false when a snapshot's outbound
   * listener could not be): /ready's "listeners" condition.
   */
  constructor(config: NodeConfig, certificates: DataPlaneCerts, metrics: Pick<Metrics, 'registry'>, log: Logger, snapshot: () => Snapshot | undefined, sockets: ListenerSockets = NO_INHERITED_SOCKETS, bound: (ok: boolean) => void = () => undefined, opts: DataPlaneOptions = {}) {
    const hostState = opts.hostState ?? new LocalHostState()
    this.#config = config
    this.#sockets = sockets
    this.#bound = bound
    this.#log = log
    this.#snapshot = snapshot
    this.#telemetry = new ConnectionTelemetry(tcpMetrics(metrics.registry), log)
    const ejections = new Counter({ name: 'hostmesh_outlier_ejections_total', help: 'Endpoints ejected by outlier detection, by service port.', labelNames: ['service_port'], registers: [metrics.registry] })
    this.#balancer = new Balancer({
      ejected: (endpoint, servicePort, until) => {
        ejections.inc({ service_port: servicePort })
        opts.ejected?.(endpoint, until)
        log.warn({ endpoint, servicePort, until: new Date(until).toISOString() }, 'endpoint ejected by outlier detection')
      },
    }, Date.now, hostState)
    const balancer = this.#balancer
    // Per-endpoint state must not grow with endpoints that come and go (the soak's --long run watches it).
    new Gauge({ name: 'hostmesh_balancer_endpoints', help: 'Endpoints the load balancer keeps state for (health, outlier counts, load); dropped when the policy no longer has them, summed over threads.', registers: [metrics.registry], collect() { this.set(balancer.size) } })
    const limits = hboneLimits(config)
    this.#pool = new HboneClientPool(certificates.manager, certificates.verifier, keepaliveOf(limits))
    this.#breakers = new CircuitBreakers(hostState, metrics.registry)
    this.#retryBudgets = new RetryBudgets(undefined, 1 / (opts.workers ?? 1))
    this.#workloads = new WorkloadLimits(hostState, metrics.registry, log.child({ limit: 'workload' }), config.outbound)
    this.#refusals = new DelayedRefusals(config.outbound.refusalDelay)
    const requests = new RequestTelemetry(httpMetrics(metrics.registry), log, this.#telemetry.activity)
    const l7 = { limits: l7Limits(config), front: new FrontMetrics(metrics.registry), traceparent: config.http.traceparent, telemetry: requests, connections: this.#telemetry, snapshot }
    const pool = this.#pool
    this.#outboundHttp = new OutboundHttp({
      ...l7, hostState, workloads: this.#workloads, balancer: this.#balancer, breakers: this.#breakers, retryBudgets: this.#retryBudgets, retries: new RetryMetrics(metrics.registry), mirrors: new MirrorMetrics(metrics.registry),
      log: log.child({ listener: 'outbound', l7: true }),
      connect: (source, ep, service, timeoutMs) => connectEndpoint(pool, source, ep, service, timeoutMs, snapshot()?.workloads.get(ep.workload ?? '')),
    })
    this.#inboundHttp = new InboundHttp({
      ...l7, log: log.child({ listener: 'inbound', l7: true }), connect: (address, port) => dialTcp(address, port, 5000),
      limiter: new RateLimiter(hostState, metrics.registry),
    })
    this.#hbone = new HboneServer({
      host: '::', port: config.ports.hbone, certs: certificates.manager, verifier: certificates.verifier, snapshot,
      log: log.child({ listener: 'hbone' }), telemetry: this.#telemetry, registry: metrics.registry, limits, http: this.#inboundHttp, hostState,
    })
    this.#plaintext = new InboundPlaintextListener({ snapshot, log: log.child({ listener: 'inbound-plaintext' }), telemetry: this.#telemetry, registry: metrics.registry, http: this.#inboundHttp, limits: config.inboundPlaintext, hostState })
  }

  /** Binds every listener for `snapshot` (outbound ones for its local workloads). Throws if one cannot bind. */
  async start(snapshot: Snapshot | undefined): Promise<void> {
    await this.#hbone.listen(this.#sockets)
    await this.#plaintext.listen(this.#config.ports.inboundPlaintext, this.#sockets)
    // No follow() runs before start() is done (lifecycle.ts subscribes after it).
    await this.#add(this.#wanted(snapshot))
    this.#bound(true)
  }

  /**
   * From now on every outbound listener keeps its sockets in the service manager's fd store;
   * the ones bound so far are stored now. Called once the inherited sockets are settled.
   */
  storeAll(): void {
    this.#storing = true
    for (const l of this.#outbound.values()) this.#sockets.keep(storeName(l), l.fds())
  }

  /**
   * After a snapshot swap, in the one safe order: bind the new outbound listeners, run
   * `between` (the iptables sync, so no rule ever points at a port nobody listens on), close
   * the listeners that are gone, re-check open connections. Serialised; never throws.
   */
  follow(snapshot: Snapshot, between: () => Promise<void> = async () => undefined): Promise<void> {
    clearTimeout(this.#retry)
    this.#queue = this.#queue.then(async () => {
      // Draining: no new listener may start accepting.
      if (this.#closed) return
      this.#balancer.retain(snapshot)
      this.#retryBudgets.retain(new Set([...snapshot.services.values()].map((svc) => `${svc.name}.${svc.namespace}`)))
      const want = this.#wanted(snapshot)
      try {
        await this.#add(want)
        this.#bound(true)
      } catch (err) {
        this.#log.error({ generation: snapshot.generation, error: (err as Error).message }, 'could not bind an outbound listener; /ready waits for "listeners", and binding is retried every second')
        this.#bound(false)
        // The same snapshot again (a newer one clears this timer with its own follow).
        this.#retry = setTimeout(() => {
          if (this.#snapshot() === snapshot && !this.#closed) void this.follow(snapshot, between)
        }, BIND_RETRY_MS).unref()
      }
      await between()
      this.#removeStale(want)
      const revoked = this.#hbone.recheck(snapshot) + this.#plaintext.recheck(snapshot)
      if (revoked > 0) this.#log.warn({ revoked, generation: snapshot.generation }, 'closed open connections the new policy denies')
    }).catch((err: unknown) => {
      // Never leave the queue rejected: every later snapshot would be skipped.
      this.#log.error({ err, generation: snapshot.generation }, 'following a policy snapshot failed')
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
      const l = new OutboundListener(workload, outboundPort, {
        snapshot: this.#snapshot, pool: this.#pool, balancer: this.#balancer, breakers: this.#breakers, outboundTrafficPolicy: this.#config.outboundTrafficPolicy, http: this.#outboundHttp, workloads: this.#workloads, refusals: this.#refusals,
        log: this.#log.child({ listener: 'outbound', workload: workload.key }), telemetry: this.#telemetry,
      })
      // The same workload edited in place keeps its port. Its new listener takes over the old
      // one's sockets when it would bind the same addresses (they stay in the fd store under
      // the workload's name); otherwise the old one stops listening and the port is bound
      // afresh. Either way the old listener keeps its open connections.
      const same = [...this.#outbound].find(([, o]) => o.port === outboundPort)
      if (same) {
        const [ok, old] = same
        this.#outbound.delete(ok)
        const adopted = old.workload.key === workload.key && l.adopt(old)
        if (!adopted && this.#storing) this.#sockets.forget(storeName(old))
        this.#retire(old)
        if (adopted) {
          this.#outbound.set(k, l)
          continue
        }
      }
      await listenRetrying(l, this.#sockets)
      if (this.#storing) this.#sockets.keep(storeName(l), l.fds())
      this.#outbound.set(k, l)
    }
  }

  #removeStale(want: ReadonlyMap<string, unknown>): void {
    for (const [k, l] of this.#outbound) {
      if (want.has(k)) continue
      this.#outbound.delete(k)
      if (this.#storing && ![...this.#outbound.values()].some((o) => o.workload.key === l.workload.key)) this.#sockets.forget(storeName(l))
      this.#retire(l)
    }
  }

  /** Stops `l` accepting; it stays reachable by destroy() until its last connection ends. */
  #retire(l: OutboundListener): void {
    this.#retired.add(l)
    void l.close().then(() => this.#retired.delete(l))
  }

  /** Connections open now; connections, streams, requests and L4 chunks relayed since start, across every listener. */
  get activity(): Activity {
    const { open, seen } = this.#telemetry.activity
    return { open, seen: seen + relayedChunks() }
  }

  /** The destination services' retry budgets, for /clusters. */
  get retryBudgets(): RetryBudgets {
    return this.#retryBudgets
  }

  /** Another thread ejected `endpoint` until `untilMs`: keep it out here too. */
  ejectedElsewhere(endpoint: string, untilMs: number): void {
    this.#balancer.ejectedElsewhere(endpoint, untilMs)
  }

  /** Endpoint state and open connections per service port, for /clusters. */
  get balancer(): Balancer {
    return this.#balancer
  }

  /** The destination services' circuit-breaker counts on this host, for /clusters. */
  get breakers(): CircuitBreakers {
    return this.#breakers
  }

  /** Every mesh listener with its addresses and open connections (outbound ones by port), for /stats. */
  async listeners(): Promise<ListenerView[]> {
    const outbound = [...this.#outbound.values()].sort((a, b) => a.port - b.port)
    return Promise.all([this.#hbone.view(), this.#plaintext.view(), ...outbound.map((l) => l.view())])
  }

  /** Graceful: stop accepting everywhere; resolves when in-flight connections have ended. */
  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#retry)
    this.#outboundHttp.drain()
    this.#inboundHttp.drain()
    this.#pool.close()
    await Promise.all([this.#hbone.close(), this.#plaintext.close(), ...[...this.#outbound.values(), ...this.#retired].map((l) => l.close())])
    // Every accepted connection has ended, so nothing in flight needs an upstream (a mirror
    // copy may be cut: mirrors are best effort). Pooled upstream connections would otherwise
    // hold the process open after its drain, and a restart's new daemon waits for its exit.
    // Not a graceful close: node leaves a client session that obeyed a GOAWAY closed but not
    // destroyed, and a close would wait for it.
    this.#outboundHttp.destroyUpstreams()
    this.#inboundHttp.destroyUpstreams()
    this.#pool.destroy()
    this.#workloads.close()
  }

  destroy(): void {
    this.#closed = true
    clearTimeout(this.#retry)
    this.#hbone.destroy()
    this.#plaintext.destroy()
    for (const l of [...this.#outbound.values(), ...this.#retired]) l.destroy()
    this.#outboundHttp.destroy()
    this.#inboundHttp.destroy()
    this.#pool.destroy()
    this.#workloads.close()
  }
}

/** The node config's `hbone` section, as the HBONE server takes it. */
export function hboneLimits(config: NodeConfig): HboneLimits {
  const { handshakeTimeout, idleSessionTimeout, keepaliveInterval, keepaliveTimeout, ...counts } = config.hbone
  return { ...counts, handshakeTimeoutMs: handshakeTimeout, idleSessionTimeoutMs: idleSessionTimeout, keepaliveIntervalMs: keepaliveInterval, keepaliveTimeoutMs: keepaliveTimeout }
}

/** The node config's `http` section, as the L7 pipelines take it. */
export function l7Limits(config: NodeConfig): L7Limits {
  const h = config.http
  return { maxRequestHeadersBytes: h.maxRequestHeadersKb * 1024, maxRequestHeaders: h.maxRequestHeaders, headerTimeoutMs: h.headerTimeout, idleTimeoutMs: h.idleTimeout }
}

const BIND_RETRY_MS = 1000
const ADDRESS_IN_USE_TRIES = 20

/**
 * A port that was just given up (a stored socket dropped with FDSTOREREMOVE, an inherited one
 * closed) can still be held for a moment by the service manager or a pending close: retry
 * EADDRINUSE briefly before calling the bind failed.
 */
async function listenRetrying(l: OutboundListener, sockets: ListenerSockets): Promise<void> {
  for (let i = 1; ; i++) {
    try {
      return await l.listen(sockets)
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EADDRINUSE' || i >= ADDRESS_IN_USE_TRIES) throw err
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
  }
}

/** The fd store name of an outbound listener: its workload key, so a restart can give it the same port. */
function storeName(l: OutboundListener): string {
  return `${OUTBOUND_FD_PREFIX}${l.workload.key}`
}
