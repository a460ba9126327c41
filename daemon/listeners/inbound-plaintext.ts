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
import { LogThrottle } from '../log/throttle.ts'
import { remoteOf, type ConnectionTelemetry } from '../telemetry/connection.ts'
import { formatAuthority } from '../tunnel/authority.ts'
import { splice, type Splice } from '../tunnel/splice.ts'
import { bind, closeServer, dialTcp, SocketSet, stopListening, type SocketSource } from './bind.ts'
import { listenerView, type ListenerView } from './view.ts'

export interface InboundPlaintextDeps {
  readonly snapshot: () => Snapshot | undefined
  readonly log: Logger
  readonly telemetry: ConnectionTelemetry
  readonly registry: Registry
  readonly connectTimeoutMs?: number
}

export class InboundPlaintextListener {
  readonly #deps: InboundPlaintextDeps
  readonly #server: Server
  readonly #sockets = new SocketSet()
  readonly #refused: Counter<'reason'>
  readonly #throttle: LogThrottle
  readonly #open = new Set<{ readonly workload: string; readonly port: number; readonly splice: Splice }>()

  constructor(deps: InboundPlaintextDeps) {
    this.#deps = deps
    this.#throttle = new LogThrottle(deps.log)
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
    this.#throttle.close()
    return closeServer(this.#server)
  }

  destroy(): void {
    this.#throttle.close()
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
    const from = remoteOf(socket)
    const record = this.#deps.telemetry.begin({ reporter: 'destination', listener: 'inbound-plaintext', src: { address: from }, dst: {}, security: 'none' })
    // Anyone who can reach a workload's port can cause these: logged at a bounded rate.
    const refuse = (reason: 'strict' | 'denied' | 'unknown', flag: 'NR' | 'UAEX', why: string, fields: Record<string, unknown>): void => {
      this.#refused.inc({ reason })
      this.#throttle.warn(`plaintext-${reason}`, { from, ...fields }, why)
      record.refuse(flag, why)
      socket.destroy()
    }
    let dst: { address: string; port: number }
    try {
      dst = originalDst(socket)
    } catch (err) {
      return refuse('unknown', 'NR', 'plaintext connection without an original destination; closing', { error: (err as Error).message })
    }
    const to = formatAuthority(dst.address, dst.port)
    const snap = this.#deps.snapshot()
    // By address; or a host process of this node with that port, reached on another of the
    // host's addresses (the capture rule matches every local address for those).
    const w = snap?.workloadByAddress.get(addressKey(dst.address, dst.port))
      ?? snap?.localWorkloads.find((l) => l.workload.match.uid !== undefined && l.workload.ports.some((p) => p.port === dst.port))?.workload
    record.update({ dst: { address: to, ...(w ? { workload: w, principal: w.identity } : {}) }, upstream: to })
    if (!snap || !w || w.node !== snap.localNode) return refuse('unknown', 'NR', 'plaintext connection for no local workload; closing', { to })
    if (w.mtlsMode === 'STRICT') return refuse('strict', 'UAEX', 'plaintext connection refused: the workload is STRICT (mTLS only)', { workload: w.key, port: dst.port })
    const decision = authorize(snap.authorization.get(w.key), { port: dst.port })
    if (!decision.allowed) return refuse('denied', 'UAEX', 'plaintext connection denied by AuthorizationPolicy', { workload: w.key, port: dst.port, reason: decision.reason })
    dialTcp(dst.address, dst.port, this.#deps.connectTimeoutMs ?? 5000).then((upstream) => {
      if (socket.destroyed) {
        upstream.destroy()
        return record.refuse('DC', 'the client closed the connection before it was connected')
      }
      record.open()
      const entry = {
        workload: w.key, port: dst.port,
        splice: splice(socket, upstream, (r) => {
          this.#open.delete(entry)
          record.close(r.aToB, r.bToA, r.error?.message)
        }),
      }
      this.#open.add(entry)
    }, (err: NodeJS.ErrnoException) => {
      this.#throttle.warn('plaintext-unreachable', { from, workload: w.key, port: dst.port, error: err.code ?? err.message }, 'plaintext connection: the workload is unreachable')
      record.refuse('UF', `workload unreachable: ${err.code ?? err.message}`)
      socket.resetAndDestroy()
    })
  }
}
