// One record per proxied connection, the same on all three paths (outbound, :15008 and :15006):
// it owns the Istio TCP metric labels and the access-log line, and reports each exactly once.
// A path fills in what it learns as the connection proceeds (the endpoint, the destination
// workload), then ends it one way: open() … close(), or refuse() for a connection that never
// carried data. Later calls are ignored, so a connection that two events try to end (a reset
// racing a revocation, a session dying under an open tunnel) is still counted once.
// docs/mesh.md ("Access log") documents every field.
import type { Logger } from '../../base/logger.ts'
import { clip } from '../../base/clip.ts'
import type { TcpLabels, TcpMetrics } from '../metrics/istio-tcp.ts'
import { canonicalIp } from '../../policy/ip.ts'
import { formatAuthority } from '../tunnel/authority.ts'

export type Reporter = 'source' | 'destination'
export type ListenerName = 'outbound' | 'hbone' | 'inbound-plaintext'
export type Security = 'mutual_tls' | 'none'

/**
 * Envoy's response flags, as docs/mesh.md lists them. UH, URX, UT, DI, FI and RL are set only
 * by the L7 path (request.ts).
 */
export type ResponseFlag = '-' | 'UAEX' | 'UF' | 'UH' | 'UO' | 'URX' | 'UT' | 'NR' | 'DI' | 'FI' | 'RL' | 'DC'

/** A workload as the record names it: Istio's `<name>` plus its namespace. */
export interface WorkloadName {
  readonly name: string
  readonly namespace: string
}

export interface Side {
  /** `ip:port` */
  readonly address?: string
  readonly workload?: WorkloadName
  readonly principal?: string
}

export interface ConnectionStart {
  readonly reporter: Reporter
  readonly listener: ListenerName
  readonly src: Side
  /** `dst.address` is what the client dialled; `service` is `<name>.<namespace>` or Istio's PassthroughCluster / BlackHoleCluster. */
  readonly dst: Side & { readonly service?: string }
  readonly security: Security
}

const UNKNOWN = 'unknown'

/** The access log and the Istio TCP counters, shared by every listener. */
export class ConnectionTelemetry {
  readonly #metrics: TcpMetrics
  readonly #log: Logger
  /**
   * How busy the data plane is (run/memory.ts): connections open now, and connections,
   * streams and refusals seen in all (every begin(), and what listeners note()).
   */
  readonly activity = { open: 0, seen: 0 }

  constructor(metrics: TcpMetrics, log: Logger) {
    this.#metrics = metrics
    this.#log = log
  }

  begin(start: ConnectionStart): ConnectionRecord {
    this.activity.seen++
    return new ConnectionRecord(start, this.#metrics, this.#log, this.activity)
  }

  /** Work that is no connection record: an accepted TCP connection, a refused stream. */
  note(): void {
    this.activity.seen++
  }
}

type State = 'new' | 'open' | 'ended'

export class ConnectionRecord {
  readonly #metrics: TcpMetrics
  readonly #log: Logger
  readonly #activity: { open: number; seen: number }
  readonly #start: ConnectionStart
  readonly #startedAt = Date.now()
  #dst: ConnectionStart['dst']
  #security: Security
  #upstream: string | undefined
  #labels: TcpLabels | undefined
  #state: State = 'new'

  constructor(start: ConnectionStart, metrics: TcpMetrics, log: Logger, activity: { open: number; seen: number }) {
    this.#activity = activity
    this.#start = start
    this.#dst = start.dst
    this.#security = start.security
    this.#metrics = metrics
    this.#log = log
  }

  get ended(): boolean {
    return this.#state === 'ended'
  }

  /** What the path learned about where the connection goes (the destination, the endpoint it picked). Ignored once open. */
  update(u: { readonly dst?: ConnectionStart['dst']; readonly upstream?: string; readonly security?: Security }): void {
    if (this.#state !== 'new') return
    if (u.dst) this.#dst = { ...this.#dst, ...u.dst }
    if (u.upstream !== undefined) this.#upstream = u.upstream
    if (u.security) this.#security = u.security
  }

  /** The connection now carries data: counted as opened. */
  open(): void {
    if (this.#state !== 'new') return
    this.#state = 'open'
    this.#activity.open++
    this.#labels = this.#labelSet('-')
    this.#metrics.opened(this.#labels)
  }

  /** The end of an open connection (or of one that never opened: the client left first, `DC`). */
  close(sent: number, received: number, error?: string): void {
    if (this.#state === 'new') return this.refuse('DC', error ?? 'the client closed the connection before it was connected')
    if (this.#state !== 'open') return
    this.#state = 'ended'
    this.#activity.open--
    this.#metrics.closed(this.#labels!, sent, received)
    this.#write('-', sent, received, error)
  }

  /** A connection that never carried data, with Envoy's flag for why. */
  refuse(flag: Exclude<ResponseFlag, '-'>, error: string): void {
    if (this.#state !== 'new') return
    this.#state = 'ended'
    this.#metrics.refused(this.#labelSet(flag))
    this.#write(flag, 0, 0, error)
  }

  #labelSet(flag: ResponseFlag): TcpLabels {
    const { src, reporter } = this.#start
    return {
      reporter,
      source_workload: src.workload?.name ?? UNKNOWN,
      source_principal: src.principal ?? UNKNOWN,
      destination_service: this.#dst.service ?? UNKNOWN,
      destination_workload: this.#dst.workload?.name ?? UNKNOWN,
      destination_principal: this.#dst.principal ?? UNKNOWN,
      connection_security_policy: this.#security,
      response_flags: flag,
    }
  }

  #write(flag: ResponseFlag, sent: number, received: number, error: string | undefined): void {
    const { src, reporter, listener } = this.#start
    const dst = this.#dst
    this.#log.info({
      access: 'tcp', reporter, listener,
      src: { address: src.address ?? null, workload: src.workload?.name ?? UNKNOWN, namespace: src.workload?.namespace ?? UNKNOWN, principal: src.principal ?? UNKNOWN },
      dst: { address: dst.address ?? null, service: dst.service ?? UNKNOWN, workload: dst.workload?.name ?? UNKNOWN, namespace: dst.workload?.namespace ?? UNKNOWN, principal: dst.principal ?? UNKNOWN },
      upstream: this.#upstream ?? null,
      security: this.#security,
      responseFlags: flag,
      bytesSent: sent,
      bytesReceived: received,
      durationMs: Date.now() - this.#startedAt,
      // Error text can carry peer-chosen values (a reset reason, an address): bounded.
      error: error === undefined ? null : clip(error, 256),
    }, 'connection')
  }
}

/** `ip:port` of a socket's far end, or undefined before it is known. */
export function remoteOf(s: { remoteAddress?: string | undefined; remotePort?: number | undefined }): string | undefined {
  return s.remoteAddress === undefined ? undefined : formatAuthority(canonicalIp(s.remoteAddress), s.remotePort ?? 0)
}
