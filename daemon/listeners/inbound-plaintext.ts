// :15006, where iptables sends plaintext that arrives for a local workload's ports from
// outside the mesh. Per connection: original destination → the local workload → STRICT:
// refuse (counted, logged) → PERMISSIVE: AuthorizationPolicy with no identity → connect to
// the workload and splice.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { Counter, type Registry } from 'prom-client'
import { originalDst } from '../intercept/origdst.ts'
import { addressKey } from '../../policy/ip.ts'
import type { Snapshot } from '../../policy/snapshot.ts'
import { authorize } from '../authz/evaluate.ts'
import type { Logger } from '../log/logger.ts'
import type { TcpLabels, TcpMetrics } from '../metrics/istio-tcp.ts'
import { splice, type Splice } from '../tunnel/splice.ts'
import { bind, closeServer, dialTcp, SocketSet, stopListening, type SocketSource } from './bind.ts'
import { listenerView, type ListenerView } from './view.ts'

export interface InboundPlaintextDeps {
  readonly snapshot: () => Snapshot | undefined
  readonly log: Logger
  readonly metrics: TcpMetrics
  readonly registry: Registry
  readonly connectTimeoutMs?: number
}

export class InboundPlaintextListener {
  readonly #deps: InboundPlaintextDeps
  readonly #server: Server
  readonly #sockets = new SocketSet()
  readonly #refused: Counter<'reason'>
  readonly #open = new Set<{ readonly workload: string; readonly port: number; readonly splice: Splice }>()

  constructor(deps: InboundPlaintextDeps) {
    this.#deps = deps
    this.#server = createServer({ allowHalfOpen: true }, (s) => this.#accept(s))
    this.#refused = new Counter({ name: 'hostmesh_inbound_plaintext_refused_total', help: 'Plaintext connections to local workloads refused, by reason (strict: the workload requires mTLS; denied: AuthorizationPolicy; unknown: not a local workload).', labelNames: ['reason'], registers: [deps.registry] })
    for (const reason of ['strict', 'denied', 'unknown']) this.#refused.inc({ reason }, 0)
  }

  listen(port: number, from?: SocketSource): Promise<AddressInfo> {
    return bind(this.#server, '::', port, from)
  }

  /** For /stats: address and open connections. */
  view(): Promise<ListenerView> {
    return listenerView('inbound-plaintext', [this.#server])
  }

  close(): Promise<void> {
    return closeServer(this.#server)
  }

  destroy(): void {
    stopListening(this.#server)
    this.#sockets.destroyAll()
  }

  /** After a snapshot swap: closes forwarded plaintext the new policy no longer allows. */
  recheck(snapshot: Snapshot): number {
    let closed = 0
    for (const c of this.#open) {
      const w = snapshot.workloads.get(c.workload)
      const d = !w || w.node !== snapshot.localNode ? { allowed: false as const, reason: 'no longer a local workload' }
        : w.mtlsMode === 'STRICT' ? { allowed: false as const, reason: 'the workload is STRICT now' }
          : authorize(snapshot.authorization.get(w.key), { port: c.port })
      if (d.allowed) continue
      closed++
      this.#deps.log.warn({ workload: c.workload, port: c.port, reason: d.reason, generation: snapshot.generation }, 'open plaintext connection closed: the new policy denies it')
      c.splice.close(new Error(`revoked by policy: ${d.reason}`))
    }
    return closed
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket)
    const log = this.#deps.log
    let dst: { address: string; port: number }
    try {
      dst = originalDst(socket)
    } catch {
      return void socket.destroy()
    }
    const snap = this.#deps.snapshot()
    // By address; or a host process of this node with that port, reached on another of the
    // host's addresses (the capture rule matches every local address for those).
    const w = snap?.workloadByAddress.get(addressKey(dst.address, dst.port))
      ?? snap?.localWorkloads.find((l) => l.workload.match.uid !== undefined && l.workload.ports.some((p) => p.port === dst.port))?.workload
    const from = `${socket.remoteAddress}:${socket.remotePort}`
    if (!snap || !w || w.node !== snap.localNode) {
      this.#refused.inc({ reason: 'unknown' })
      log.warn({ from, to: `${dst.address}:${dst.port}` }, 'plaintext connection for no local workload; closing')
      return void socket.destroy()
    }
    if (w.mtlsMode === 'STRICT') {
      this.#refused.inc({ reason: 'strict' })
      log.warn({ from, workload: w.key, port: dst.port }, 'plaintext connection refused: the workload is STRICT (mTLS only)')
      return void socket.destroy()
    }
    const decision = authorize(snap.authorization.get(w.key), { port: dst.port })
    const labels: TcpLabels = {
      reporter: 'destination', source_workload: 'unknown', source_principal: 'unknown', destination_service: 'unknown',
      destination_workload: w.name, destination_principal: w.identity, connection_security_policy: 'none', response_flags: '-',
    }
    if (!decision.allowed) {
      this.#refused.inc({ reason: 'denied' })
      log.warn({ from, workload: w.key, port: dst.port, reason: decision.reason }, 'plaintext connection denied by AuthorizationPolicy')
      return void socket.destroy()
    }
    const started = Date.now()
    dialTcp(dst.address, dst.port, this.#deps.connectTimeoutMs ?? 5000).then((upstream) => {
      if (socket.destroyed) return void upstream.destroy()
      this.#deps.metrics.opened(labels)
      const entry = {
        workload: w.key, port: dst.port,
        splice: splice(socket, upstream, (r) => {
          this.#open.delete(entry)
          this.#deps.metrics.closed(labels, r.aToB, r.bToA)
          log.info({ access: 'tcp', reporter: 'destination', src: { address: from }, dst: { workload: w.key, address: `${dst.address}:${dst.port}` }, bytesSent: r.aToB, bytesReceived: r.bToA, durationMs: Date.now() - started, ...(r.error ? { error: r.error.message } : {}) }, 'connection')
        }),
      }
      this.#open.add(entry)
    }, (err: NodeJS.ErrnoException) => {
      log.warn({ from, workload: w.key, port: dst.port, error: err.code ?? err.message }, 'plaintext connection: the workload is unreachable')
      socket.resetAndDestroy()
    })
  }
}
