// HBONE client: CONNECT streams over pooled HTTP/2 sessions. A session is TLS 1.3 as the
// source workload's identity to the destination node's :15008, with the destination
// workload's identity verified (certs/tls.ts, connectVerified) before the session exists.
// Sessions are pooled per (source identity, destination identity, destination node address),
// at most 100 streams each, closed after 5 idle minutes; a dead one is replaced.
import http2, { type ClientHttp2Session, type ClientHttp2Stream } from 'node:http2'
import type { LeafContexts } from '../../certs/manager.ts'
import { connectVerified, type PeerVerifier } from '../../certs/tls.ts'
import { HostmeshError } from '../../base/errors.ts'
import { DEFAULT_HBONE_LIMITS } from './admission.ts'
import { formatAuthority } from './authority.ts'
import { keepalive, keepaliveOf, tcpKeepalive, type KeepaliveSettings } from './keepalive.ts'
import { CONNECTION_WINDOW, H2_SETTINGS, IDLE_SESSION_MS, MAX_STREAMS_PER_SESSION } from './settings.ts'

/** The tunnel could not be opened; `status` is the HBONE answer (400, 401, 503) when there was one. */
export class TunnelError extends HostmeshError {
  readonly status: number | undefined
  /** The destination refused the stream before processing it: safe to try again. */
  readonly unprocessed: boolean
  constructor(message: string, status?: number, options?: { cause?: unknown; unprocessed?: boolean }) {
    super('HOSTMESH_ERR_TUNNEL', message, options)
    this.status = status
    this.unprocessed = options?.unprocessed ?? false
  }
}

export interface TunnelTarget {
  /** The source workload's identity: the client certificate. */
  readonly source: string
  /** The identity the destination must prove. */
  readonly destination: string
  /** The destination node's HBONE address and port. */
  readonly node: { readonly address: string; readonly port: number }
  /** The workload address and port, for :authority. */
  readonly address: string
  readonly port: number
  /** W3C baggage for the destination's telemetry. */
  readonly baggage?: string
  /** The source workload's key (`<namespace>/<name>`), for the destination's telemetry. */
  readonly sourceWorkload?: string
  /** `<name>.<namespace>` of the service the source dialled, for the destination's telemetry. */
  readonly destinationService?: string
  /** Bounds the TLS handshake and the CONNECT answer (DestinationPolicy connectTimeout). */
  readonly timeoutMs?: number
}

interface PooledSession {
  readonly h2: ClientHttp2Session
  active: number
}

export class HboneClientPool {
  readonly #certs: LeafContexts
  readonly #verifier: PeerVerifier
  readonly #connectTimeoutMs: number
  readonly #keepalive: KeepaliveSettings
  readonly #pools = new Map<string, PooledSession[]>()
  readonly #opening = new Map<string, Promise<PooledSession>>()
  #destroyed = false

  constructor(certs: LeafContexts, verifier: PeerVerifier, keepaliveSettings: KeepaliveSettings = DEFAULT_KEEPALIVE, connectTimeoutMs = 5000) {
    this.#certs = certs
    this.#verifier = verifier
    this.#keepalive = keepaliveSettings
    this.#connectTimeoutMs = connectTimeoutMs
  }

  /** Sessions open now (for /stats and tests). */
  get sessions(): number {
    let n = 0
    for (const list of this.#pools.values()) n += list.length
    return n
  }

  /**
   * Opens one tunnel; resolves with the CONNECT stream once the destination answered 200.
   * A stream the server refused unprocessed (REFUSED_STREAM, or a session that was already
   * going away: the destination is draining for a restart) is tried once more on a new
   * session; RFC 9113 §8.7 makes that safe.
   */
  async open(t: TunnelTarget): Promise<ClientHttp2Stream> {
    try {
      return await this.#openOnce(t)
    } catch (err) {
      if (!(err instanceof TunnelError) || !err.unprocessed) throw err
      return this.#openOnce(t)
    }
  }

  async #openOnce(t: TunnelTarget): Promise<ClientHttp2Stream> {
    // The session comes with a stream slot already reserved, so a burst cannot overfill it.
    const session = await this.#session(t)
    return new Promise<ClientHttp2Stream>((resolve, reject) => {
      let stream: ClientHttp2Stream
      try {
        stream = session.h2.request({
          ':method': 'CONNECT',
          ':authority': formatAuthority(t.address, t.port),
          ...(t.baggage ? { baggage: t.baggage } : {}),
          ...(t.sourceWorkload ? { 'x-hostmesh-source-workload': t.sourceWorkload } : {}),
          ...(t.destinationService ? { 'x-hostmesh-destination-service': t.destinationService } : {}),
        }, { endStream: false })
      } catch (err) {
        session.active--
        return reject(new TunnelError(`CONNECT on a closing session: ${(err as Error).message}`, undefined, { cause: err, unprocessed: true }))
      }
      const timeoutMs = t.timeoutMs ?? this.#connectTimeoutMs
      const timer = setTimeout(() => {
        // No answer in time: the session may be black-holed. Retire it, so the next
        // connection gets a fresh one instead of waiting on it too.
        session.h2.destroy()
        reject(new TunnelError(`no answer to CONNECT ${formatAuthority(t.address, t.port)} within ${timeoutMs} ms`))
      }, timeoutMs)
      stream.once('response', (headers) => {
        clearTimeout(timer)
        const status = Number(headers[':status'])
        if (status === 200) return resolve(stream)
        stream.close()
        reject(new TunnelError(`CONNECT ${formatAuthority(t.address, t.port)} via ${formatAuthority(t.node.address, t.node.port)}: ${status}`, status))
      })
      stream.once('error', (err) => {
        clearTimeout(timer)
        const unprocessed = stream.rstCode === http2.constants.NGHTTP2_REFUSED_STREAM
        reject(new TunnelError(`CONNECT stream failed: ${err.message}`, undefined, { cause: err, unprocessed }))
      })
      // A stream closed with no answer and no error: its session was destroyed (keepalive
      // found the peer dead, or the peer hung up). Fail now, not when the timer says so. One
      // whose HEADERS never left (no stream id yet) was not processed: it may be tried again.
      stream.once('close', () => {
        session.active--
        clearTimeout(timer)
        reject(new TunnelError(`CONNECT ${formatAuthority(t.address, t.port)} via ${formatAuthority(t.node.address, t.node.port)}: the HBONE session ended before an answer`, undefined, { unprocessed: stream.id === undefined }))
      })
    })
  }

  close(): void {
    for (const list of this.#pools.values()) for (const s of list) s.h2.close()
  }

  destroy(): void {
    this.#destroyed = true
    for (const list of this.#pools.values()) for (const s of list) { s.h2.destroy(); s.h2.socket?.destroy() }
    this.#pools.clear()
  }

  /** A live session for the target with one stream slot reserved (`active` already counted). */
  async #session(t: TunnelTarget): Promise<PooledSession> {
    const key = `${t.source}|${t.destination}|${formatAuthority(t.node.address, t.node.port)}`
    for (;;) {
      const usable = (this.#pools.get(key) ?? []).find((s) => !s.h2.closed && !s.h2.destroyed && s.active < limit(s.h2))
      if (usable) {
        usable.active++
        return usable
      }
      // One handshake at a time per key: a burst waits for it, then takes slots in the loop
      // above (and opens another session when this one is full).
      let opening = this.#opening.get(key)
      if (!opening) {
        opening = this.#connect(key, t).finally(() => this.#opening.delete(key))
        this.#opening.set(key, opening)
      }
      await opening
    }
  }

  async #connect(key: string, t: TunnelTarget): Promise<PooledSession> {
    const context = await this.#certs.ensure(t.source)
    const { socket } = await connectVerified({ host: t.node.address, port: t.node.port, context, expected: t.destination, timeoutMs: t.timeoutMs ?? this.#connectTimeoutMs }, this.#verifier)
    // Many streams share the session, each sending small frames (requests, WINDOW_UPDATEs):
    // with Nagle they wait for the peer's delayed ACK, tens of ms each. Envoy and ztunnel set
    // TCP_NODELAY on every connection too.
    socket.setNoDelay(true)
    const h2 = http2.connect(`https://${formatAuthority(t.node.address, t.node.port)}`, { createConnection: () => socket, settings: H2_SETTINGS })
    const pooled: PooledSession = { h2, active: 0 }
    const drop = (): void => {
      const l = this.#pools.get(key)
      if (!l) return
      const i = l.indexOf(pooled)
      if (i >= 0) l.splice(i, 1)
      if (l.length === 0) this.#pools.delete(key)
    }
    h2.on('error', drop)
    h2.on('close', drop)
    h2.on('goaway', drop)
    h2.setTimeout(IDLE_SESSION_MS, () => { if (pooled.active === 0) h2.close() })
    // A dead peer (killed, black-holed) ends the session, and with it every tunnel on it.
    // (node's destroy waits for pending writes, which a dead peer never takes: the socket goes too.)
    keepalive(h2, this.#keepalive, () => { h2.destroy(); socket.destroy() })
    tcpKeepalive(socket, this.#keepalive)
    await new Promise<void>((resolve, reject) => {
      h2.once('connect', () => { h2.setLocalWindowSize(CONNECTION_WINDOW); resolve() })
      h2.once('error', (err) => reject(new TunnelError(`HTTP/2 to ${formatAuthority(t.node.address, t.node.port)} failed: ${err.message}`, undefined, { cause: err })))
    })
    // Opened after destroy() (the end of a drain): nothing would own it, and it would hold the process.
    if (this.#destroyed) {
      h2.destroy()
      socket.destroy()
      throw new TunnelError(`HTTP/2 to ${formatAuthority(t.node.address, t.node.port)}: hostmesh is shutting down`)
    }
    const l = this.#pools.get(key) ?? []
    l.push(pooled)
    this.#pools.set(key, l)
    return pooled
  }
}

const DEFAULT_KEEPALIVE = keepaliveOf(DEFAULT_HBONE_LIMITS)

/** Streams per session: ours (100), or fewer if the server says so. */
function limit(h2: ClientHttp2Session): number {
  return Math.min(MAX_STREAMS_PER_SESSION, h2.remoteSettings?.maxConcurrentStreams ?? MAX_STREAMS_PER_SESSION)
}
