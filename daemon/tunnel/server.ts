// The HBONE server on :15008, in data-flow order for each tunnel:
//   accept TCP → TLS 1.3 with the destination workload's certificate (SNI) → verify the
//   client (certs/tls.ts) → HTTP/2 → CONNECT stream → :authority must be a local workload's
//   ip:port (else 400) → AuthorizationPolicy with the peer's identity (deny: 401) → connect
//   to the workload (fail: 503) → 200 and splice both ways.
// Open tunnels are kept so that a new snapshot can re-check them: a tunnel the new policy
// denies is closed.
import http2, { type Http2Session, type ServerHttp2Stream } from 'node:http2'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import type { CertManager } from '../../certs/manager.ts'
import { acceptVerified, type PeerVerifier } from '../../certs/tls.ts'
import { addressKey } from '../../policy/ip.ts'
import type { Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import { authorize } from '../authz/evaluate.ts'
import type { Logger } from '../log/logger.ts'
import type { TcpLabels, TcpMetrics } from '../metrics/istio-tcp.ts'
import { parseAuthority } from './authority.ts'
import { H2_SETTINGS, CONNECTION_WINDOW } from './settings.ts'
import { splice, type Splice } from './splice.ts'
import { bind, dialTcp, SocketSet, stopListening, type SocketSource } from '../listeners/bind.ts'
import { listenerView, type ListenerView } from '../listeners/view.ts'

export interface HboneServerOptions {
  readonly host: string
  readonly port: number
  readonly certs: CertManager
  readonly verifier: PeerVerifier
  readonly snapshot: () => Snapshot | undefined
  readonly log: Logger
  readonly metrics: TcpMetrics
  readonly connectTimeoutMs?: number
}

interface Tunnel {
  readonly peer: string
  readonly workload: WorkloadInfo
  readonly port: number
  readonly splice: Splice
}

export class HboneServer {
  readonly #opts: HboneServerOptions
  readonly #tcp: Server
  readonly #h2 = http2.createServer({ settings: H2_SETTINGS })
  readonly #peers = new WeakMap<Http2Session, string>()
  readonly #sessions = new Set<Http2Session>()
  readonly #tunnels = new Set<Tunnel>()
  readonly #sockets = new SocketSet()
  #pendingPeer: string | undefined

  constructor(opts: HboneServerOptions) {
    this.#opts = opts
    this.#tcp = createServer((raw) => this.#accept(raw))
    // Sessions are created synchronously inside emit('connection'): that is where the
    // verified peer identity is attached to its session.
    this.#h2.on('session', (session) => {
      this.#peers.set(session, this.#pendingPeer!)
      this.#sessions.add(session)
      session.once('close', () => this.#sessions.delete(session))
      session.setLocalWindowSize(CONNECTION_WINDOW)
      session.on('error', () => undefined)
    })
    this.#h2.on('stream', (stream, headers) => this.#onStream(stream, headers))
  }

  listen(from?: SocketSource): Promise<AddressInfo> {
    return bind(this.#tcp, this.#opts.host, this.#opts.port, from)
  }

  /**
   * Stop accepting: no new connections, and GOAWAY on every session so peers open no new
   * streams here (they move to a fresh session elsewhere or after the restart); open tunnels
   * finish. Resolves when every connection has ended.
   */
  close(): Promise<void> {
    const closed = new Promise<void>((resolve) => this.#tcp.close(() => resolve()))
    for (const s of this.#sessions) s.close()
    return closed
  }

  destroy(): void {
    stopListening(this.#tcp)
    for (const t of this.#tunnels) t.splice.close(new Error('hostmesh is shutting down'))
    this.#sockets.destroyAll()
  }

  get tunnels(): number {
    return this.#tunnels.size
  }

  /** For /stats: address, open TLS connections and the tunnels they carry. */
  view(): Promise<ListenerView> {
    return listenerView('hbone', [this.#tcp], { tunnels: this.#tunnels.size })
  }

  /** After a snapshot swap: closes the tunnels the new AuthorizationPolicies deny. Returns how many. */
  recheck(snapshot: Snapshot): number {
    let closed = 0
    for (const t of this.#tunnels) {
      const d = this.#stillAllowed(snapshot, t)
      if (d.allowed) continue
      closed++
      this.#opts.log.warn({ peer: t.peer, workload: t.workload.key, port: t.port, reason: d.reason, generation: snapshot.generation }, 'open connection closed: the new policy denies it')
      t.splice.close(new Error(`revoked by policy: ${d.reason}`))
    }
    return closed
  }

  /** A tunnel under a new snapshot: its workload must still be local, and policy must still allow it. */
  #stillAllowed(snapshot: Snapshot, t: { peer: string; workload: WorkloadInfo; port: number }): { allowed: true } | { allowed: false; reason: string } {
    const w = snapshot.workloads.get(t.workload.key)
    if (!w || w.node !== snapshot.localNode || w.identity !== t.workload.identity || !w.ports.some((p) => p.port === t.port)) {
      return { allowed: false, reason: `${t.workload.key}:${t.port} is no longer a local workload port` }
    }
    const d = authorize(snapshot.authorization.get(w.key), { identity: t.peer, port: t.port })
    return d.allowed ? { allowed: true } : { allowed: false, reason: d.reason }
  }

  #accept(raw: Socket): void {
    this.#sockets.add(raw)
    acceptVerified(raw, this.#opts.certs, this.#opts.verifier).then(({ socket, identity }) => {
      socket.on('error', () => undefined)
      if (socket.alpnProtocol !== 'h2') {
        this.#opts.log.warn({ peer: identity, alpn: socket.alpnProtocol }, 'HBONE client did not negotiate h2; closing')
        return socket.destroy()
      }
      this.#pendingPeer = identity
      this.#h2.emit('connection', socket)
      this.#pendingPeer = undefined
    }, () => undefined) // refused: counted and logged by the verifier
  }

  #onStream(stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    const peer = this.#peers.get(stream.session!)!
    const started = Date.now()
    stream.on('error', () => undefined)
    const answer = (status: number, why: string, extra: Record<string, unknown> = {}): void => {
      this.#opts.log.warn({ peer, authority: headers[':authority'], status, ...extra }, why)
      if (!stream.destroyed) stream.respond({ ':status': status }, { endStream: true })
    }
    if (headers[':method'] !== 'CONNECT') return answer(400, 'HBONE request is not CONNECT', { method: headers[':method'] })
    const target = parseAuthority(headers[':authority'])
    const snap = this.#opts.snapshot()
    const workload = target && snap ? snap.workloadByAddress.get(addressKey(target.ip, target.port)) : undefined
    if (!target || !snap || !workload || workload.node !== snap.localNode) return answer(400, 'HBONE :authority is not a local workload')
    // Telemetry metadata from the source, as Istio's peer metadata: labels, never decisions,
    // and only names the snapshot knows (a peer must not grow the metrics at will).
    const srcKey = String(headers['x-hostmesh-source-workload'] ?? '')
    const src = snap.workloads.get(srcKey)
    const svc = /^([a-z0-9-]+)\.([a-z0-9-]+)$/.exec(String(headers['x-hostmesh-destination-service'] ?? ''))
    const labels: TcpLabels = {
      reporter: 'destination', source_workload: src && src.identity === peer ? src.name : 'unknown', source_principal: peer,
      destination_service: svc && snap.services.has(`${svc[2]}/${svc[1]}`) ? `${svc[1]}.${svc[2]}` : 'unknown', destination_workload: workload.name, destination_principal: workload.identity,
      connection_security_policy: 'mutual_tls', response_flags: '-',
    }
    const refuse = (status: number, flag: string, why: string, error: string): void => {
      this.#opts.metrics.refused(labels, flag)
      this.#access(labels, target, 0, 0, started, status === 401 ? `denied: ${error}` : `workload unreachable: ${error}`)
      answer(status, why, { workload: workload.key, [status === 401 ? 'reason' : 'error']: error })
    }
    const decision = authorize(snap.authorization.get(workload.key), { identity: peer, port: target.port })
    if (!decision.allowed) return refuse(401, 'UAEX', 'connection denied by AuthorizationPolicy', decision.reason)
    dialTcp(target.ip, target.port, this.#opts.connectTimeoutMs ?? 5000).then((upstream) => {
      if (stream.destroyed) return void upstream.destroy()
      // The policy may have changed while connecting: decide again with the snapshot in force.
      const now = this.#opts.snapshot()
      const again = now ? this.#stillAllowed(now, { peer, workload, port: target.port }) : { allowed: false as const, reason: 'no policy' }
      if (!again.allowed) {
        upstream.destroy()
        return refuse(401, 'UAEX', 'connection denied by AuthorizationPolicy', again.reason)
      }
      stream.respond({ ':status': 200 })
      this.#opts.metrics.opened(labels)
      const tunnel: Tunnel = {
        peer, workload, port: target.port,
        splice: splice(stream, upstream, (r) => {
          this.#tunnels.delete(tunnel)
          this.#opts.metrics.closed(labels, r.aToB, r.bToA)
          this.#access(labels, target, r.aToB, r.bToA, started, r.error?.message)
        }),
      }
      this.#tunnels.add(tunnel)
    }, (err: NodeJS.ErrnoException) => refuse(503, 'UF', 'the workload is unreachable', err.code ?? err.message))
  }

  #access(l: TcpLabels, target: { ip: string; port: number }, sent: number, received: number, started: number, error?: string): void {
    this.#opts.log.info({
      access: 'tcp', reporter: 'destination', src: { principal: l.source_principal, workload: l.source_workload },
      dst: { workload: l.destination_workload, principal: l.destination_principal, address: `${target.ip}:${target.port}` },
      bytesSent: sent, bytesReceived: received, durationMs: Date.now() - started, ...(error ? { error } : {}),
    }, 'connection')
  }
}
