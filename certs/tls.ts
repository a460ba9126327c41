// TLS 1.3 for mesh connections, and the one place a peer is judged.
//   Server: the certificate is the destination workload's, chosen by SNI (spiffe.serverName);
//           a client certificate is required.
//   Client: presents the source workload's certificate and accepts the server only if its
//           SPIFFE ID equals the identity policy says the destination has.
// Both sides hand the peer's chain to verifyPeer (verify.ts) right after the handshake and
// before any application byte is read or written; OpenSSL is told not to decide
// (rejectUnauthorized: false) so that there is exactly one set of rules. Rejections are
// counted by reason and logged without the certificate.
import type { X509Certificate as CryptoX509 } from 'node:crypto'
import type { Socket } from 'node:net'
import { connect, createSecureContext, TLSSocket, type ConnectionOptions, type SecureContext } from 'node:tls'
import { Counter, type Registry } from 'prom-client'
import type { Logger } from '../base/logger.ts'
import { LogThrottle } from '../base/throttle.ts'
import { clip } from '../base/clip.ts'
import { TlsPeerError } from './errors.ts'
import { serverName } from './spiffe.ts'
import { REJECT_REASONS, verifyPeer, type PeerVerdict, type RejectReason, type TrustPolicy } from './verify.ts'

export const ALPN_H2 = 'h2'
const HANDSHAKE_REASONS = ['unknown_server_name', 'handshake'] as const
export type HandshakeFailure = RejectReason | (typeof HANDSHAKE_REASONS)[number]

/** Counts and logs rejected peers; judges every handshake by the same rules. */
export class PeerVerifier {
  readonly #trust: () => TrustPolicy
  readonly #log: LogThrottle
  readonly #failures: Counter<'reason'>

  constructor(trust: () => TrustPolicy, log: Logger, registry: Registry) {
    this.#trust = trust
    // Anyone who can reach :15008 can fail a handshake at will: log each reason at a bounded rate.
    this.#log = new LogThrottle(log)
    const existing = registry.getSingleMetric('hostmesh_tls_handshake_failures_total') as Counter<'reason'> | undefined
    this.#failures = existing ?? new Counter({
      name: 'hostmesh_tls_handshake_failures_total',
      help: 'mTLS handshakes refused, by reason (peer verification or TLS-level failure).',
      labelNames: ['reason'],
      registers: [registry],
    })
    for (const reason of [...REJECT_REASONS, ...HANDSHAKE_REASONS]) this.#failures.inc({ reason }, 0)
  }

  /** Judges a socket whose handshake just completed. On rejection the caller must destroy it. */
  check(socket: TLSSocket, expected?: string): PeerVerdict {
    const side = expected === undefined ? 'server' : 'client'
    const verdict = verifyPeer(peerChain(socket), this.#trust(), expected === undefined ? { usage: 'clientAuth' } : { expected, usage: 'serverAuth' })
    if (!verdict.ok) this.#count(verdict.reason, { side, peer: socket.remoteAddress, message: verdict.message })
    return verdict
  }

  /** A handshake that failed before a peer could be judged (unknown SNI, no TLS 1.3, bad alert). */
  handshakeFailed(err: Error & { code?: string }, remote?: string): HandshakeFailure {
    const reason = err.code === 'HOSTMESH_ERR_UNKNOWN_SNI' || /no local workload for TLS server name/.test(err.message) ? 'unknown_server_name' : 'handshake'
    this.#count(reason, { side: 'server', peer: remote, message: err.message })
    return reason
  }

  #count(reason: HandshakeFailure, fields: { side: string; peer: string | undefined; message: string }): void {
    this.#failures.inc({ reason })
    this.#log.warn(`tls-${reason}`, { reason, ...fields, message: clip(fields.message, 256) }, 'mTLS peer refused')
  }
}

/**
 * The peer's certificate chain as the handshake delivered it, leaf first. Call it once per
 * socket: node's getPeerX509Certificate moves the chain out of OpenSSL's peer stack while
 * building `issuerCertificate` links (nodejs/node#65579), so a second call sees only the
 * leaf. This is also why the server side is a TLSSocket wrapped by hand (serverSocket), not
 * a tls.Server: tls.Server makes that first call itself, and the chain is lost.
 */
export function peerChain(socket: TLSSocket): CryptoX509[] {
  const chain: CryptoX509[] = []
  const seen = new Set<string>()
  for (let c = socket.getPeerX509Certificate(); c && !seen.has(c.fingerprint256) && chain.length < 8; c = c.issuerCertificate) {
    seen.add(c.fingerprint256)
    chain.push(c)
  }
  return chain
}

export interface ServerContexts {
  contextForServerName(name: string): SecureContext | undefined
}

// Before SNI picks a workload's context, the handshake runs on this one: no certificate (a
// client without SNI fails), and TLS 1.3 only, which OpenSSL fixes from the first context.
const PRE_SNI = createSecureContext({ minVersion: 'TLSv1.3' })

/**
 * The server side of one mesh connection on an accepted TCP socket: SNI picks the workload's
 * certificate and a client certificate is required. Judge it with PeerVerifier.check on
 * 'secure' (acceptVerified does), before reading a byte.
 */
export function serverSocket(raw: Socket, contexts: ServerContexts, alpn: readonly string[] = [ALPN_H2]): TLSSocket {
  return new TLSSocket(raw, {
    isServer: true,
    secureContext: PRE_SNI,
    requestCert: true,
    rejectUnauthorized: false,
    ALPNProtocols: [...alpn],
    SNICallback: (name, cb) => {
      const ctx = name ? contexts.contextForServerName(name) : undefined
      if (ctx) cb(null, ctx)
      else cb(Object.assign(new Error(`no local workload for TLS server name ${JSON.stringify(name)}`), { code: 'HOSTMESH_ERR_UNKNOWN_SNI' }), undefined)
    },
  })
}

/**
 * Runs the server handshake on `raw` and judges the client. Resolves with the verified
 * socket; on any failure the socket is destroyed and the promise rejects with TlsPeerError.
 */
export function acceptVerified(raw: Socket, contexts: ServerContexts, verifier: PeerVerifier, timeoutMs = 10_000): Promise<VerifiedSocket> {
  return new Promise((resolve, reject) => {
    const socket = serverSocket(raw, contexts)
    const remote = raw.remoteAddress
    let settled = false
    const fail = (err: Error): void => {
      settled = true
      clearTimeout(timer)
      socket.destroy()
      reject(err)
    }
    // Counted once, whatever comes after (an error is followed by 'close').
    const onError = (err: Error & { code?: string }): void => { if (!settled) fail(new TlsPeerError(verifier.handshakeFailed(err, remote), err.message)) }
    const timer = setTimeout(() => onError(Object.assign(new Error(`TLS handshake from ${remote} timed out`), { code: 'ETIMEDOUT' })), timeoutMs)
    // A client that hangs up mid-handshake (a FIN) gives 'close' and no 'error': without this
    // the handshake would count as in progress until the timeout.
    const onClose = (): void => onError(new Error('the client closed the connection during the handshake'))
    socket.once('error', onError)
    socket.once('close', onClose)
    socket.once('secure', () => {
      clearTimeout(timer)
      // From here on errors belong to the connection, not the handshake: the caller handles them.
      socket.off('error', onError)
      socket.off('close', onClose)
      // What tls.Server's own 'secure' handler would do: the handshake is over. http2 waits
      // for 'secureConnect' (which server sockets never emit) while this is still true.
      ;(socket as TLSSocket & { secureConnecting: boolean }).secureConnecting = false
      const verdict = verifier.check(socket)
      if (!verdict.ok) return fail(new TlsPeerError(verdict.reason, verdict.message))
      resolve({ socket, identity: verdict.identity, leaf: verdict.leaf, ...(verdict.node !== undefined ? { node: verdict.node } : {}) })
    })
  })
}

export interface ClientTlsParams {
  readonly host: string
  readonly port: number
  /** The source workload's context (CertManager.contextFor / ensure). */
  readonly context: SecureContext
  /** The SPIFFE ID the destination must prove. */
  readonly expected: string
  readonly alpn?: readonly string[]
  readonly timeoutMs?: number
}

export function clientTlsOptions(p: ClientTlsParams): ConnectionOptions {
  return {
    host: p.host,
    port: p.port,
    secureContext: p.context,
    servername: serverName(p.expected)!,
    minVersion: 'TLSv1.3',
    ALPNProtocols: [...(p.alpn ?? [ALPN_H2])],
    rejectUnauthorized: false,
    // Host names mean nothing here; the identity is checked by PeerVerifier.check.
    checkServerIdentity: () => undefined,
  }
}

/** A verified mesh connection. `leaf` is the peer's certificate as judged: read it from here,
 * not from the socket, whose peer chain node has already consumed (see peerChain). */
export interface VerifiedSocket {
  readonly socket: TLSSocket
  readonly identity: string
  readonly leaf: CryptoX509
  readonly node?: string
}

/**
 * Connects and resolves only once the server proved `expected`: nothing can be written to a
 * peer that has not been verified. Rejects with a TlsPeerError naming the reason.
 */
export function connectVerified(p: ClientTlsParams, verifier: PeerVerifier): Promise<VerifiedSocket> {
  return new Promise((resolve, reject) => {
    const socket = connect(clientTlsOptions(p))
    const timer = setTimeout(() => socket.destroy(new TlsPeerError('handshake', `TLS handshake with ${p.host}:${p.port} timed out`)), p.timeoutMs ?? 10_000)
    const onError = (err: Error): void => { clearTimeout(timer); reject(err) }
    socket.once('error', onError)
    socket.once('secureConnect', () => {
      clearTimeout(timer)
      socket.off('error', onError)
      const verdict = verifier.check(socket, p.expected)
      if (verdict.ok) return resolve({ socket, identity: verdict.identity, leaf: verdict.leaf, ...(verdict.node !== undefined ? { node: verdict.node } : {}) })
      socket.destroy()
      reject(new TlsPeerError(verdict.reason, verdict.message))
    })
  })
}
