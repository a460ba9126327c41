// One HBONE session on the server side (:15008): the verified peer, where it connects from,
// the tunnels it carries (the server's only record of them), and what it has cost in refused
// streams. The session owns its
// tunnels' lives: when it dies — its socket closed, a GOAWAY, an error, a timeout — every
// tunnel on it is ended, so none outlives the connection that carried it.
import { constants, type ServerHttp2Session } from 'node:http2'
import type { Duplex } from 'node:stream'
import type { Protocol, WorkloadInfo } from '../../policy/snapshot.ts'
import { TokenBucket } from '../limits/token-bucket.ts'
import type { HboneLimits } from './admission.ts'

/** A tunnel on a session: where it goes (for policy re-checks), and how to end it. */
export interface SessionTunnel {
  readonly workload: WorkloadInfo
  readonly port: number
  /** How the destination reads the port: tcp tunnels are spliced, the others go through the L7 pipeline. */
  readonly protocol: Protocol
  close(reason: Error): void
}

/**
 * Streams refused on a session, by what they say about the peer. `abuse`: the peer broke the
 * protocol's contract (a request no hostmesh sends, a stream reset before its answer, as in
 * CVE-2023-44487's rapid reset); the session is destroyed. `denial`: policy, a limit or an
 * unreachable workload said no; the session goes away gracefully (its open tunnels finish).
 */
export type Refusal = 'abuse' | 'denial'

/** How long a destroyed session's GOAWAY gets to reach a peer before its socket is closed. */
const GOAWAY_GRACE_MS = 1000

export class PeerSession {
  readonly h2: ServerHttp2Session
  readonly #socket: Duplex
  /** The verified SPIFFE ID. */
  readonly peer: string
  /** The source address, canonical (admission's key). */
  readonly source: string
  /** `ip:port` of the peer. */
  readonly address: string
  readonly tunnels = new Set<SessionTunnel>()
  /** The highest stream id seen: what a graceful GOAWAY says was processed. */
  lastStreamId = 0
  /** Streams the peer reset before their answer. */
  earlyResets = 0
  readonly #budgets: Record<Refusal, TokenBucket>
  #closedFor: Refusal | undefined
  #goingAway = false
  /** Streams processed whose tunnel is not kept yet (authorizing, dialling the workload). */
  #settingUp = 0
  #lastAccepted: number | undefined

  constructor(h2: ServerHttp2Session, socket: Duplex, peer: string, source: string, address: string, limits: HboneLimits) {
    this.h2 = h2
    this.#socket = socket
    this.peer = peer
    this.source = source
    this.address = address
    const budget = (): TokenBucket => new TokenBucket(limits.refusedStreamsPerSecond, limits.refusedStreamsBurst)
    this.#budgets = { abuse: budget(), denial: budget() }
    h2.once('close', () => {
      for (const t of this.tunnels) t.close(new Error('the HBONE session closed'))
      this.tunnels.clear()
    })
  }

  /** The session is going or gone: no new tunnel may start on it. */
  get ending(): boolean {
    return this.h2.closed || this.h2.destroyed || this.#goingAway
  }

  /**
   * Graceful end: GOAWAY NO_ERROR naming the last stream processed, so the peer opens no new
   * stream here while the open ones finish; the peer closes the connection once they have.
   * Not node's close(): that marks the session closed, and a closed session can no longer
   * send the PINGs that tell whether the peer is still there while its tunnels finish.
   */
  goAway(): void {
    if (this.#goingAway || this.h2.closed || this.h2.destroyed) return
    this.#goingAway = true
    this.#lastAccepted = this.lastStreamId
    this.h2.goaway(constants.NGHTTP2_NO_ERROR, this.lastStreamId)
    this.#closeIfDone()
  }

  /**
   * A stream this session processes, from its HEADERS until it becomes a tunnel (keep) or
   * ends: the returned function says it is no longer being set up (call it once or more).
   */
  setup(stream: { once(event: 'close', listener: () => void): unknown }): () => void {
    this.#settingUp++
    let done = false
    const end = (): void => {
      if (done) return
      done = true
      this.#settingUp--
      this.#closeIfDone()
    }
    stream.once('close', end)
    return end
  }

  /** Carries `t` until the returned function is called (its end). */
  keep(t: SessionTunnel): () => void {
    this.tunnels.add(t)
    return () => {
      this.tunnels.delete(t)
      this.#closeIfDone()
    }
  }

  /**
   * After our GOAWAY, the last tunnel's end closes the session from this side. A node client
   * that gets a GOAWAY ends its socket, but a node server never reads that FIN (the session
   * owns the socket's reads), so waiting for the peer held a drain to its deadline. Not while
   * a stream is still being set up: a closed session sends no PINGs, and the tunnel it
   * becomes would have no keepalive.
   */
  #closeIfDone(): void {
    if (this.#goingAway && this.tunnels.size === 0 && this.#settingUp === 0 && !this.h2.closed && !this.h2.destroyed) this.h2.close()
  }

  /**
   * Whether stream `id` is one this session still processes. After a GOAWAY the streams above
   * the last one it named are not (RFC 9113 §6.8: the peer may retry them elsewhere), even
   * those already read in the same batch.
   */
  processes(id: number): boolean {
    return this.#lastAccepted === undefined || id <= this.#lastAccepted
  }

  /**
   * Ends the session: GOAWAY with `code`, then the socket is destroyed, at once or after
   * `graceMs` (time for the GOAWAY to leave). node's own destroy waits for the socket's pending
   * writes to finish first, and with a peer that stopped reading (or is gone without the
   * transport saying so) they never do: the session, and every tunnel on it, would stay open.
   */
  kill(code: number = constants.NGHTTP2_NO_ERROR, graceMs = 0): void {
    if (!this.h2.destroyed) this.h2.destroy(new Error('HBONE session ended by hostmesh'), code)
    if (graceMs <= 0) return void this.#socket.destroy()
    const timer = setTimeout(() => this.#socket.destroy(), graceMs).unref()
    this.#socket.once('close', () => clearTimeout(timer))
  }

  /**
   * Counts one refused stream (`cost` of its budget). Returns the refusal kind when this one spent the session's
   * budget (the session is being ended); undefined otherwise. Abuse destroys the session with
   * ENHANCE_YOUR_CALM, as nghttp2 and Envoy answer a flood. A denial only goes away
   * gracefully: node's client destroys a session, every stream on it, on a GOAWAY with any
   * other code than NO_ERROR, and a hostmesh's pooled session also carries the allowed
   * tunnels of the same pair of identities.
   */
  refused(kind: Refusal, cost = 1): Refusal | undefined {
    if (this.#closedFor !== undefined || this.#budgets[kind].take(cost)) return undefined
    this.#closedFor = kind
    if (kind === 'abuse') this.kill(constants.NGHTTP2_ENHANCE_YOUR_CALM, GOAWAY_GRACE_MS)
    else this.goAway()
    return kind
  }
}
