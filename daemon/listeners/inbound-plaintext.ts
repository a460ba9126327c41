// :15006, where iptables sends plaintext that arrives for a local workload's ports from
// outside the mesh. Each accepted connection goes through the destination's per-connection
// path (l4/inbound.ts) with the socket as its entry: the original destination names the
// local workload (else NR), there is no peer (a STRICT workload refuses it), and a refusal
// closes the socket (resets it when the workload is unreachable), counted and logged at a
// bounded rate. Before any of that, a connection over inboundPlaintext.maxConnections (or its
// source's share) is reset at once, with no access-log record: a flood costs a counter.
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { Counter, type Registry } from 'prom-client'
import { originalDst } from '../intercept/origdst.ts'
import { addressKey, canonicalIp } from '../../policy/ip.ts'
import type { Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import { stillAllowed } from '../authz/recheck.ts'
import { inboundPath, type InboundPath } from '../l4/inbound.ts'
import type { InboundEntry, KeptConnection } from '../l4/inbound-connection.ts'
import type { InboundHttp } from '../l7/inbound.ts'
import type { Logger } from '../../base/logger.ts'
import { LogThrottle } from '../../base/throttle.ts'
import type { HostState } from '../limits/host-state.ts'
import { admitPlaintext, DEFAULT_PLAINTEXT_LIMITS, type PlaintextLimits } from '../limits/plaintext-limits.ts'
import { remoteOf, type ConnectionTelemetry } from '../telemetry/connection.ts'
import { formatAuthority } from '../tunnel/authority.ts'
import { bind, closeServer, SocketSet, stopListening, type SocketSource } from './bind.ts'
import { listenerView, type ListenerView } from './view.ts'

export interface InboundPlaintextDeps {
  readonly snapshot: () => Snapshot | undefined
  readonly log: Logger
  readonly telemetry: ConnectionTelemetry
  readonly registry: Registry
  readonly connectTimeoutMs?: number
  /** The request path for http/http2/grpc workload ports. */
  readonly http: InboundHttp
  readonly limits?: PlaintextLimits
  /** Where the connection counts live (shared with worker threads). */
  readonly hostState: HostState
}

export class InboundPlaintextListener {
  readonly #deps: InboundPlaintextDeps
  readonly #server: Server
  readonly #sockets = new SocketSet()
  readonly #refused: Counter<'reason'>
  readonly #throttle: LogThrottle
  readonly #open = new Set<KeptConnection>()
  readonly #inbound: InboundPath

  constructor(deps: InboundPlaintextDeps) {
    this.#deps = deps
    this.#throttle = new LogThrottle(deps.log)
    this.#inbound = inboundPath({ snapshot: deps.snapshot, http: deps.http, connectTimeoutMs: deps.connectTimeoutMs ?? 5000, log: deps.log })
    this.#server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.#accept(s))
    this.#refused = new Counter({ name: 'hostmesh_inbound_plaintext_refused_total', help: 'Plaintext connections to local workloads refused, by reason (strict: the workload requires mTLS; denied: AuthorizationPolicy; unknown: not a local workload; connections, connections_per_source: over inboundPlaintext.maxConnections or its per-source share).', labelNames: ['reason'], registers: [deps.registry] })
    for (const reason of ['strict', 'denied', 'unknown', 'connections', 'connections_per_source']) this.#refused.inc({ reason }, 0)
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
    const source = remoteIp(socket) ?? ''
    const slot = admitPlaintext(this.#deps.hostState, this.#deps.limits ?? DEFAULT_PLAINTEXT_LIMITS, source)
    if ('refused' in slot) {
      this.#refused.inc({ reason: slot.refused })
      this.#throttle.warn(`plaintext-${slot.refused}`, { from: source }, `plaintext connection refused: over inboundPlaintext.${slot.refused === 'connections' ? 'maxConnections' : 'maxConnectionsPerSource'}`)
      return void socket.resetAndDestroy()
    }
    socket.once('close', slot.release)
    this.#inbound(this.#entry(socket))
  }

  /**
   * A plaintext connection as the inbound path's entry: its target is the original
   * destination, it has no peer, and a refusal closes it.
   */
  #entry(socket: Socket): InboundEntry {
    const from = remoteOf(socket)
    const record = this.#deps.telemetry.begin({ reporter: 'destination', listener: 'inbound-plaintext', src: { address: from }, dst: {}, security: 'none' })
    // Anyone who can reach a workload's port can cause these: logged at a bounded rate.
    const refuse = (reason: 'strict' | 'denied' | 'unknown', flag: 'NR' | 'UAEX', why: string, fields: Record<string, unknown>): void => {
      this.#refused.inc({ reason })
      this.#throttle.warn(`plaintext-${reason}`, { from, ...fields }, why)
      record.refuse(flag, why)
      socket.destroy()
    }
    // Set by target(): every later step has them.
    let workload: WorkloadInfo
    let port: number
    return {
      downstream: socket,
      target: (snap) => {
        let dst: { address: string; port: number }
        try {
          dst = originalDst(socket)
        } catch (err) {
          return void refuse('unknown', 'NR', 'plaintext connection without an original destination; closing', { error: (err as Error).message })
        }
        const to = formatAuthority(dst.address, dst.port)
        // By address; or a host process of this node with that port, reached on another of the
        // host's addresses (the capture rule matches every local address for those).
        const w = snap?.workloadByAddress.get(addressKey(dst.address, dst.port))
          ?? snap?.localWorkloads.find((l) => l.workload.match.uid !== undefined && l.workload.ports.some((p) => p.port === dst.port))?.workload
        record.update({ dst: { address: to, ...(w ? { workload: w, principal: w.identity } : {}) }, upstream: to })
        if (!snap || !w || w.node !== snap.localNode) return void refuse('unknown', 'NR', 'plaintext connection for no local workload; closing', { to })
        workload = w
        port = dst.port
        const ip = remoteIp(socket)
        return {
          snapshot: snap, record,
          conn: {
            listener: 'inbound-plaintext', workload: w, address: dst.address, port: dst.port,
            src: { ...(from ? { address: from } : {}) }, ...(ip ? { clientAddress: ip } : {}),
          },
        }
      },
      refuse: (why) => {
        switch (why.kind) {
          case 'strict': return refuse('strict', 'UAEX', 'plaintext connection refused: the workload is STRICT (mTLS only)', { workload: workload.key, port })
          case 'denied': return refuse('denied', 'UAEX', 'plaintext connection denied by AuthorizationPolicy', { workload: workload.key, port, reason: why.reason })
          case 'unreachable':
            this.#throttle.warn('plaintext-unreachable', { from, workload: workload.key, port, error: why.error }, 'plaintext connection: the workload is unreachable')
            record.refuse('UF', `workload unreachable: ${why.error}`)
            return socket.resetAndDestroy()
          case 'gone': return record.refuse('DC', 'the client closed the connection before it was connected')
        }
      },
      accept: () => undefined,
      keep: (c) => {
        this.#open.add(c)
        return () => this.#open.delete(c)
      },
    }
  }
}

function remoteIp(socket: Socket): string | undefined {
  const a = socket.remoteAddress
  return a ? canonicalIp(a) : undefined
}
