// :15006, where iptables sends plaintext that arrives for a local workload's ports from
// outside the mesh. Per connection: original destination → the local workload → STRICT:
// refuse (counted, logged) → PERMISSIVE: AuthorizationPolicy with no identity → connect to
// the workload and splice.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { Counter, type Registry } from 'prom-client'
import { originalDst } from '../intercept/origdst.ts'
import { addressKey, canonicalIp } from '../../policy/ip.ts'
import type { Protocol, Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import { authorize } from '../authz/evaluate.ts'
import { protocolOf, stillAllowed } from '../authz/recheck.ts'
import type { InboundHttp } from '../l7/inbound.ts'
import { countBytes } from '../tunnel/count.ts'
import type { Logger } from '../../base/logger.ts'
import { LogThrottle } from '../../base/throttle.ts'
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
  /** The request path for http/http2/grpc workload ports. */
  readonly http: InboundHttp
}

export class InboundPlaintextListener {
  readonly #deps: InboundPlaintextDeps
  readonly #server: Server
  readonly #sockets = new SocketSet()
  readonly #refused: Counter<'reason'>
  readonly #throttle: LogThrottle
  readonly #open = new Set<{ readonly workload: WorkloadInfo; readonly port: number; readonly protocol: Protocol; close(reason: Error): void }>()

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
      const d = stillAllowed(snapshot, c)
      if (d.allowed) continue
      closed++
      this.#deps.log.warn({ workload: c.workload.key, port: c.port, reason: d.reason, generation: snapshot.generation }, 'open plaintext connection closed: the new policy denies it')
      c.close(new Error(`revoked by policy: ${d.reason}`))
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
    const protocol = protocolOf(snap, dst.address, dst.port)
    const decision = authorize(snap.authorization.get(w.key), { port: dst.port, ...(protocol !== 'tcp' ? { stage: 'connect' as const } : {}) })
    if (!decision.allowed) return refuse('denied', 'UAEX', 'plaintext connection denied by AuthorizationPolicy', { workload: w.key, port: dst.port, reason: decision.reason })
    if (protocol !== 'tcp') {
      record.open()
      const bytes = countBytes(socket)
      const entry = { workload: w, port: dst.port, protocol, close: (reason: Error) => socket.destroy(reason) }
      this.#open.add(entry)
      socket.once('close', () => {
        this.#open.delete(entry)
        record.close(bytes.read, bytes.written)
      })
      const ip = remoteIp(socket)
      return this.#deps.http.serve(socket, {
        listener: 'inbound-plaintext', workload: w, address: dst.address, port: dst.port,
        src: { ...(from ? { address: from } : {}) }, ...(ip ? { clientAddress: ip } : {}),
      }, protocol)
    }
    dialTcp(dst.address, dst.port, this.#deps.connectTimeoutMs ?? 5000).then((upstream) => {
      if (socket.destroyed) {
        upstream.destroy()
        return record.refuse('DC', 'the client closed the connection before it was connected')
      }
      record.open()
      const joined: Splice = splice(socket, upstream, (r) => {
        this.#open.delete(entry)
        record.close(r.aToB, r.bToA, r.error?.message)
      })
      const entry = { workload: w, port: dst.port, protocol, close: (reason: Error) => joined.close(reason) }
      this.#open.add(entry)
    }, (err: NodeJS.ErrnoException) => {
      this.#throttle.warn('plaintext-unreachable', { from, workload: w.key, port: dst.port, error: err.code ?? err.message }, 'plaintext connection: the workload is unreachable')
      record.refuse('UF', `workload unreachable: ${err.code ?? err.message}`)
      socket.resetAndDestroy()
    })
  }
}

function remoteIp(socket: Socket): string | undefined {
  const a = socket.remoteAddress
  return a ? canonicalIp(a) : undefined
}
