// The HBONE server on :15008. Per connection, in order:
//   accept TCP → admission (connections in all and per source, new connections per second)
//   → a handshake slot (queued) → TLS 1.3 with the destination workload's certificate (SNI),
//   client verified (certs/tls.ts), all within the handshake timeout → new sessions per
//   second per identity → HTTP/2 session (session.ts)
// and per CONNECT stream on it: the session still processes it (after a GOAWAY, streams above
// the last one named are refused unprocessed), then the destination's per-connection path
// (l4/inbound.ts) with this stream as its entry: a CONNECT to a local workload's ip:port (else
// 400), the peer's verified identity, answers as statuses on the stream (401, 503, 200), and
// refusals charged to the session.
// Refusals a peer can cause at will (bad requests, early resets, limits) are counted in
// metrics, logged at a bounded rate with peer values clipped, and spend the session's budget:
// a session that keeps sending them is closed with ENHANCE_YOUR_CALM. Open tunnels are kept
// so that a new snapshot can re-check them, and so that a dying session ends its tunnels.
import http2, { type ServerHttp2Stream } from 'node:http2'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { Counter, type Registry } from 'prom-client'
import type { HostState } from '../limits/host-state.ts'
import type { LeafContexts } from '../../certs/manager.ts'
import { acceptVerified, type PeerVerifier } from '../../certs/tls.ts'
import { addressKey, canonicalIp } from '../../policy/ip.ts'
import type { Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import { stillAllowed } from '../authz/recheck.ts'
import { inboundPath, type InboundPath } from '../l4/inbound.ts'
import type { InboundEntry } from '../l4/inbound-connection.ts'
import type { InboundHttp } from '../l7/inbound.ts'
import { clip } from '../../base/clip.ts'
import type { Logger } from '../../base/logger.ts'
import { LogThrottle } from '../../base/throttle.ts'
import { remoteOf, type ConnectionRecord, type ConnectionTelemetry } from '../telemetry/connection.ts'
import { bind, SocketSet, stopListening, type SocketSource } from '../listeners/bind.ts'
import { listenerView, type ListenerView } from '../listeners/view.ts'
import { Admission, DEFAULT_HBONE_LIMITS, type HboneLimits } from './admission.ts'
import { formatAuthority, parseAuthority } from './authority.ts'
import { keepalive, keepaliveOf, tcpKeepalive, type KeepaliveSettings } from './keepalive.ts'
import { PeerSession, type Refusal } from './session.ts'
import { H2_SETTINGS, CONNECTION_WINDOW } from './settings.ts'
import { h2CloseReason } from '../net/h2-errors.ts'

export interface HboneServerOptions {
  readonly host: string
  readonly port: number
  readonly certs: LeafContexts
  readonly verifier: PeerVerifier
  readonly snapshot: () => Snapshot | undefined
  readonly log: Logger
  readonly telemetry: ConnectionTelemetry
  readonly registry: Registry
  readonly limits?: HboneLimits
  readonly connectTimeoutMs?: number
  /** The request path for tunnels to http/http2/grpc ports. */
  readonly http: InboundHttp
  /** Where the host-wide limits are counted: shared by worker threads. */
  readonly hostState?: HostState
}

/** Early resets after which a session's dials wait SUSPECT_DIAL_DELAY_MS for a reset to arrive. */
const SUSPECT_AFTER_EARLY_RESETS = 1
const SUSPECT_DIAL_DELAY_MS = 25
/** Resets a peer may send: the burst, and per second after it (node's rapid-reset guard). */
const STREAM_RESET_BURST = 10_000
const STREAM_RESET_RATE = 1_000
/** What an early reset takes from the abuse budget: a tenth of it with the defaults. */
const EARLY_RESET_COST = 10

const STREAM_REFUSALS = ['bad_request', 'early_reset', 'tunnels', 'tunnels_per_peer'] as const
type StreamRefusal = (typeof STREAM_REFUSALS)[number]

export class HboneServer {
  readonly #opts: HboneServerOptions
  readonly #tcp: Server
  readonly #admission: Admission
  readonly #keepalive: KeepaliveSettings
  readonly #sessions = new Set<PeerSession>()
  readonly #sockets = new SocketSet()
  readonly #throttle: LogThrottle
  readonly #refusedConnections: Counter<'reason'>
  readonly #refusedStreams: Counter<'reason'>
  readonly #closedSessions: Counter<'reason'>
  readonly #inbound: InboundPath

  constructor(opts: HboneServerOptions) {
    this.#opts = opts
    this.#inbound = inboundPath({ snapshot: opts.snapshot, http: opts.http, connectTimeoutMs: opts.connectTimeoutMs ?? 5000, log: opts.log })
    this.#admission = new Admission(opts.limits ?? DEFAULT_HBONE_LIMITS, Date.now, opts.hostState)
    this.#keepalive = keepaliveOf(this.#admission.limits)
    this.#throttle = new LogThrottle(opts.log)
    this.#tcp = createServer((raw) => this.#accept(raw))
    const counter = (name: string, help: string, reasons: readonly string[]): Counter<'reason'> => {
      const c = new Counter({ name, help, labelNames: ['reason'], registers: [opts.registry] })
      for (const reason of reasons) c.inc({ reason }, 0)
      return c
    }
    this.#refusedConnections = counter('hostmesh_hbone_connections_refused_total', 'Connections to the HBONE port closed before TLS by a limit (docs/config.md "hbone"), by reason.', ['connections', 'connections_per_source', 'connection_rate', 'session_rate', 'not_h2'])
    this.#refusedStreams = counter('hostmesh_hbone_streams_refused_total', 'CONNECT streams refused before reaching a workload for a reason other than policy, by reason.', STREAM_REFUSALS)
    this.#closedSessions = counter('hostmesh_hbone_sessions_closed_total', 'HBONE sessions ended by this server: abuse (destroyed, GOAWAY ENHANCE_YOUR_CALM), denial (too many refused streams: GOAWAY, open tunnels finish), idle, keepalive (nothing from the peer: dead), flood and protocol (node ended it: a control-frame, header or reset flood, or a protocol error).', ['abuse', 'denial', 'idle', 'keepalive', 'flood', 'protocol'])
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
    for (const s of this.#sessions) s.goAway()
    this.#throttle.close()
    return closed
  }

  destroy(): void {
    stopListening(this.#tcp)
    for (const s of this.#sessions) {
      for (const t of s.tunnels) t.close(new Error('hostmesh is shutting down'))
      s.kill()
    }
    this.#sockets.destroyAll()
    this.#throttle.close()
  }

  /** Open tunnels: every session's. */
  get tunnels(): number {
    let n = 0
    for (const s of this.#sessions) n += s.tunnels.size
    return n
  }

  /** For /stats: address, open TLS connections and the tunnels they carry. */
  view(): Promise<ListenerView> {
    return listenerView('hbone', [this.#tcp], { tunnels: this.tunnels })
  }

  /** After a snapshot swap: closes the tunnels the new AuthorizationPolicies deny. Returns how many. */
  recheck(snapshot: Snapshot): number {
    let closed = 0
    for (const s of this.#sessions) {
      for (const t of s.tunnels) {
        const d = stillAllowed(snapshot, { peer: s.peer, workload: t.workload, port: t.port, protocol: t.protocol })
        if (d.allowed) continue
        closed++
        this.#opts.log.warn({ peer: s.peer, workload: t.workload.key, port: t.port, reason: d.reason, generation: snapshot.generation }, 'open connection closed: the new policy denies it')
        t.close(new Error(`revoked by policy: ${d.reason}`))
      }
    }
    return closed
  }

  #accept(raw: Socket): void {
    raw.on('error', () => undefined)
    // Small frames of many streams: no Nagle (see client-pool.ts).
    raw.setNoDelay(true)
    this.#opts.telemetry.note()
    const source = canonicalIp(raw.remoteAddress ?? '')
    const address = remoteOf(raw)
    const admitted = this.#admission.connection(source)
    if (!admitted.ok) {
      this.#refusedConnections.inc({ reason: admitted.reason })
      this.#throttle.warn(`hbone-${admitted.reason}`, { from: address, reason: admitted.reason }, 'HBONE connection refused: over a limit')
      return void raw.destroy()
    }
    this.#sockets.add(raw)
    raw.once('close', admitted.release)
    const limits = this.#admission.limits
    tcpKeepalive(raw, this.#keepalive)
    const deadline = Date.now() + limits.handshakeTimeoutMs
    const waited = new AbortController()
    const timer = setTimeout(() => waited.abort(new Error(`TLS handshake from ${address} timed out (waiting for a handshake slot)`)), limits.handshakeTimeoutMs)
    raw.once('close', () => waited.abort(new Error('closed while waiting for a handshake slot')))
    let releaseSlot = (): void => undefined
    this.#admission.handshake(source, waited.signal).then((release) => {
      releaseSlot = release
      clearTimeout(timer)
      return acceptVerified(raw, this.#opts.certs, this.#opts.verifier, Math.max(1, deadline - Date.now()))
    }, (err: Error) => {
      clearTimeout(timer)
      if (!raw.destroyed) this.#opts.verifier.handshakeFailed(err, raw.remoteAddress)
      raw.destroy()
      throw err
    }).then(({ socket, identity }) => {
      releaseSlot()
      socket.on('error', () => undefined)
      if (socket.alpnProtocol !== 'h2') {
        this.#refusedConnections.inc({ reason: 'not_h2' })
        this.#throttle.warn('hbone-not-h2', { peer: identity, from: address, alpn: clip(socket.alpnProtocol || 'none') }, 'HBONE client did not negotiate h2; closing')
        return void socket.destroy()
      }
      if (!this.#admission.session(source, identity)) {
        this.#refusedConnections.inc({ reason: 'session_rate' })
        this.#throttle.warn('hbone-session-rate', { peer: identity, from: address }, 'HBONE session refused: this identity opens sessions too fast')
        return void socket.destroy()
      }
      this.#session(socket, identity, source, address ?? '-')
    }).catch(() => releaseSlot()) // refused: counted and logged by the verifier or above
  }

  #session(socket: Socket, identity: string, source: string, address: string): void {
    // A source hostmesh resets a tunnel for every HTTP request its client abandons (the
    // workload must see the cancel), so node's rapid-reset guard (1,000 resets in a burst,
    // then 33/s, after which it kills the session with every request on it) is raised to
    // what a busy host's aborts need; early resets, the attack's real cost, are charged
    // to the session's abuse budget above.
    const h2 = http2.performServerHandshake(socket, { settings: H2_SETTINGS, streamResetBurst: STREAM_RESET_BURST, streamResetRate: STREAM_RESET_RATE })
    const limits = this.#admission.limits
    const session = new PeerSession(h2, socket, identity, source, address, limits)
    this.#sessions.add(session)
    h2.once('close', () => this.#sessions.delete(session))
    // A flood or protocol error node caught: the peer's doing, charged as abuse is.
    h2.on('error', (err: Error) => {
      const why = h2CloseReason(err)
      if (why === undefined) return
      const reason = why === 'protocol' || why === 'other' ? 'protocol' : 'flood'
      this.#closedSessions.inc({ reason })
      this.#admission.penalize(source, identity, true)
      this.#throttle.warn(`hbone-session-${reason}`, { peer: identity, from: address, reason, error: clip(err.message), tunnels: session.tunnels.size }, 'HBONE session ended by an HTTP/2 error')
    })
    h2.setLocalWindowSize(CONNECTION_WINDOW)
    h2.setTimeout(limits.idleSessionTimeoutMs, () => {
      if (session.tunnels.size > 0) return
      this.#closedSessions.inc({ reason: 'idle' })
      h2.close()
    })
    keepalive(h2, this.#keepalive, (why) => {
      this.#closedSessions.inc({ reason: 'keepalive' })
      this.#throttle.warn('hbone-keepalive', { peer: identity, from: address, tunnels: session.tunnels.size, why }, 'HBONE session dead: closing it and its tunnels')
      session.kill()
    })
    h2.on('stream', (stream, headers) => this.#onStream(session, stream, headers))
  }

  #onStream(session: PeerSession, stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders): void {
    this.#opts.telemetry.note()
    stream.on('error', () => undefined)
    // Read in the same batch as the stream that spent a budget, or after a drain's GOAWAY:
    // refused unprocessed, so the peer retries it on another session.
    if (!session.processes(stream.id ?? 0)) return void stream.close(http2.constants.NGHTTP2_REFUSED_STREAM)
    session.lastStreamId = Math.max(session.lastStreamId, stream.id ?? 0)
    this.#inbound(this.#entry(session, stream, headers, session.setup(stream)))
  }

  /**
   * A CONNECT stream as the inbound path's entry: its target is the :authority, its answers
   * are statuses on the stream, and what it is refused for is charged to its session.
   */
  #entry(session: PeerSession, stream: ServerHttp2Stream, headers: http2.IncomingHttpHeaders, setUp: () => void): InboundEntry {
    const { peer } = session
    let answered = false
    const answer = (status: number): void => {
      answered = true
      if (!stream.destroyed) stream.respond({ ':status': status }, { endStream: true })
    }
    // A stream the peer resets before it has its answer: the rapid-reset pattern.
    stream.once('close', () => {
      if (!answered && !session.ending) this.#refuseStream(session, 'early_reset', {})
    })
    const refuse = (reason: StreamRefusal, status: number, fields: Record<string, unknown>): void => {
      answer(status)
      this.#refuseStream(session, reason, fields)
    }
    // Set by target(): every later step has them.
    let record: ConnectionRecord
    let workload: WorkloadInfo
    let port: number
    let authority: string
    const deny = (reason: string): void => {
      answer(401)
      record.refuse('UAEX', `denied: ${reason}`)
      this.#throttle.warn('hbone-denied', { peer, workload: workload.key, port, status: 401, reason }, 'connection denied by AuthorizationPolicy')
      this.#endIfSpent(session, 'denial')
    }
    return {
      downstream: stream,
      target: (snap) => {
        if (headers[':method'] !== 'CONNECT') return void refuse('bad_request', 400, { method: clip(headers[':method']), why: 'not CONNECT' })
        const target = parseAuthority(headers[':authority'])
        const w = target && snap ? snap.workloadByAddress.get(addressKey(target.ip, target.port)) : undefined
        if (!target || !snap || !w || w.node !== snap.localNode) return void refuse('bad_request', 400, { authority: clip(headers[':authority']), why: ':authority is not a local workload' })
        workload = w
        port = target.port
        // Telemetry metadata from the source, as Istio's peer metadata: labels, never decisions,
        // and only names the snapshot knows (a peer must not grow the metrics at will).
        const src = snap.workloads.get(String(headers['x-hostmesh-source-workload'] ?? ''))
        const svc = /^([a-z0-9-]+)\.([a-z0-9-]+)$/.exec(String(headers['x-hostmesh-destination-service'] ?? ''))
        const service = svc && snap.services.has(`${svc[2]}/${svc[1]}`) ? { service: `${svc[1]}.${svc[2]}` } : {}
        authority = formatAuthority(target.ip, target.port)
        const from = { address: session.address, principal: peer, ...(src && src.identity === peer ? { workload: src } : {}) }
        record = this.#opts.telemetry.begin({
          reporter: 'destination', listener: 'hbone',
          src: from,
          dst: { address: authority, workload, principal: workload.identity, ...service },
          security: 'mutual_tls',
        })
        return { snapshot: snap, record, conn: { listener: 'hbone', workload, address: target.ip, port, peer, src: from, ...service } }
      },
      tunnel: () => {
        const admitted = this.#admission.tunnel(session.source)
        if (admitted.ok) return admitted.release
        record.refuse('UO', `over the ${admitted.reason} limit`)
        answer(503)
        this.#refuseStream(session, admitted.reason, { workload: workload.key })
        return undefined
      },
      refuse: (why) => {
        switch (why.kind) {
          case 'strict': return deny('the workload is STRICT (mTLS only)') // not reached: a stream always has a verified peer
          case 'denied': return deny(why.reason)
          case 'unreachable':
            answer(503)
            record.refuse('UF', `workload unreachable: ${why.error}`)
            this.#throttle.warn('hbone-unreachable', { peer, workload: workload.key, status: 503, error: why.error }, 'the workload is unreachable')
            // Each costs the peer's session: a peer must not make a dial and a log line at will.
            return this.#endIfSpent(session, 'denial')
          // An early reset: counted against the session when the stream closed; its record
          // ends here, so every stream that got one has its one line (at most a session's
          // abuse budget of them before the session is ended).
          case 'gone': return record.refuse('DC', 'the peer reset the stream before its answer')
        }
      },
      // A reset that arrived in the same read as the HEADERS is known on the next turn: never
      // dial for it. A session that has reset streams early before (no hostmesh does: the
      // rapid-reset pattern) waits a little longer, so its resets that come a read later are
      // seen first too.
      settle: () => new Promise((resolve) => {
        if (session.earlyResets >= SUSPECT_AFTER_EARLY_RESETS) setTimeout(resolve, SUSPECT_DIAL_DELAY_MS)
        else setImmediate(resolve)
      }),
      accept: () => {
        answered = true
        stream.respond({ ':status': 200 })
        record.update({ upstream: authority })
      },
      keep: (tunnel) => {
        const release = session.keep(tunnel)
        setUp()
        return release
      },
    }
  }

  /** A stream refused for a reason a peer can cause at will: counted, logged at a bounded rate, charged to its session. */
  #refuseStream(session: PeerSession, reason: StreamRefusal, fields: Record<string, unknown>): void {
    this.#refusedStreams.inc({ reason })
    if (reason === 'early_reset') session.earlyResets++
    this.#throttle.warn(`hbone-${reason}`, { peer: session.peer, from: session.address, reason, ...fields }, 'HBONE stream refused')
    // An early reset costs ten: no hostmesh sends one, and each can cost a dial.
    this.#endIfSpent(session, reason === 'bad_request' || reason === 'early_reset' ? 'abuse' : 'denial', reason === 'early_reset' ? EARLY_RESET_COST : 1)
  }

  /**
   * Charges one refusal to the session's budget of that kind; once it is spent the session
   * ends (abuse: destroyed; denial: GOAWAY, open tunnels finish), and that peer waits before
   * new sessions (abuse: its whole source address).
   */
  #endIfSpent(session: PeerSession, kind: Refusal, cost = 1): void {
    if (session.refused(kind, cost) === undefined) return
    this.#closedSessions.inc({ reason: kind })
    this.#admission.penalize(session.source, session.peer, kind === 'abuse')
    this.#throttle.warn(`hbone-session-${kind}`, { peer: session.peer, from: session.address, reason: kind, tunnels: session.tunnels.size }, kind === 'abuse'
      ? 'HBONE session destroyed (GOAWAY ENHANCE_YOUR_CALM): too many bad requests or early resets'
      : 'HBONE session going away (GOAWAY): too many refused streams; its open tunnels finish')
  }
}
