// One record per HTTP request (or gRPC call) on the L7 path, on both hosts: it owns the Istio
// request metric labels and the access-log line, and reports each exactly once. The pipeline
// begins it when the request's headers are in, fills in what it learns (the route and rule, the
// endpoint, the destination workload), and finishes it when the response is done or the request
// is given up; later calls are ignored, so a request that two events try to end (the response's
// end racing a client reset) is still counted once. This is the request's counterpart of
// connection.ts; docs/mesh.md ("Request telemetry") documents every field.
import type { Logger } from '../../base/logger.ts'
import { clip } from '../../base/clip.ts'
import type { HttpLabels, HttpMetrics } from '../metrics/istio-http.ts'
import type { ListenerName, Reporter, ResponseFlag, Security, Side } from './connection.ts'

export type RequestProtocol = 'http' | 'grpc'

export interface RequestDestination extends Side {
  /** `<name>.<namespace>` of a Service the snapshot has (or PassthroughCluster / BlackHoleCluster). */
  readonly service?: string
  /** The destination workload's version (versionOf its labels). */
  readonly version?: string
}

export interface RequestStart {
  readonly reporter: Reporter
  readonly listener: ListenerName
  /** Names the snapshot knows only: they become metric labels. */
  readonly src: Side
  readonly dst: RequestDestination
  readonly security: Security
  readonly protocol: RequestProtocol
  /** What the client sent, as it sent it; the record clips them and strips the query from path. */
  readonly method: string
  readonly authority: string
  readonly path: string
  readonly requestId?: string
  readonly traceId?: string
  /** performance.now() when the request began (its first byte arrived); begin()'s time when absent. */
  readonly startedAt?: number
}

/** What the pipeline learns as the request goes on. */
export interface RequestFacts {
  /** Merged into what begin() was told. */
  readonly dst?: RequestDestination
  /** The HTTPRoute that matched, `<namespace>/<name>`. */
  readonly route?: string
  /** Index of the matched rule in that route's `rules`. */
  readonly rule?: number
  /** That rule's `name`, when it has one. */
  readonly ruleName?: string
  /** The endpoint `ip:port` the request was sent to (the last one tried). */
  readonly upstream?: string
  readonly security?: Security
  /** An `x-request-id` / trace id created by the pipeline after begin(). */
  readonly requestId?: string
  readonly traceId?: string
}

export interface RequestEnd {
  /** The status sent to the client; 0 when none was (the client went away first), as Istio logs. */
  readonly status: number
  /** gRPC only: `grpc-status` from the trailers (or the headers of a trailers-only response). */
  readonly grpcStatus?: number
  /** Envoy's flags for what went wrong; empty or absent: `-`. */
  readonly flags?: readonly ResponseFlag[]
  /** The request as received from the client, and the response as sent back: headers and body. */
  readonly requestBytes: number
  readonly responseBytes: number
  readonly error?: string
}

/** How much of each value a peer chose goes into the access-log line, at most (characters). */
export const REQUEST_CLIP = Object.freeze({ method: 32, authority: 256, path: 256, id: 128, error: 256 })

const UNKNOWN = 'unknown'

/**
 * The order in which Envoy writes its flags (its ResponseFlag bit order), so the same set is
 * always the same label value: `UF,URX`, never `URX,UF`.
 */
const FLAG_ORDER: readonly ResponseFlag[] = ['UH', 'UT', 'UF', 'UO', 'NR', 'DI', 'FI', 'RL', 'UAEX', 'DC', 'URX']

/** Envoy's `%RESPONSE_FLAGS%`: `-`, one flag, or several comma-joined in Envoy's order. */
export function formatFlags(flags: readonly ResponseFlag[] | undefined): string {
  if (flags === undefined || flags.length === 0) return '-'
  if (flags.length === 1) return flags[0]!
  let out = ''
  for (const f of FLAG_ORDER) if (flags.includes(f)) out = out === '' ? f : `${out},${f}`
  return out === '' ? '-' : out
}

// Label strings made once: a status is a 3-digit number (RFC 9110), a gRPC status 0..16.
const CODES: string[] = []
const GRPC_CODES: readonly string[] = Array.from({ length: 17 }, (_, i) => String(i))
const GRPC_UNKNOWN = 2

/** response_code: the status, or "0" for none and for anything that is not a 3-digit status. */
function codeLabel(status: number): string {
  if (!Number.isInteger(status) || status < 100 || status > 999) return '0'
  return (CODES[status] ??= String(status))
}

/**
 * grpc_response_status: "" for plain HTTP and for a call that ended without a status; a code
 * outside gRPC's 0..16 is UNKNOWN (2), so a peer cannot grow the label's values.
 */
function grpcLabel(protocol: RequestProtocol, status: number | undefined): string {
  if (protocol !== 'grpc' || status === undefined) return ''
  return GRPC_CODES[Number.isInteger(status) && status >= 0 && status <= 16 ? status : GRPC_UNKNOWN]!
}

/** The path as logged: without its query, which can carry tokens and personal data. */
export function stripQuery(path: string): string {
  const q = path.indexOf('?')
  return q === -1 ? path : path.slice(0, q)
}

/** A workload's version as Istio labels it: its `version` label, else `app.kubernetes.io/version`. */
export function versionOf(labels: Readonly<Record<string, string>>): string | undefined {
  return labels['version'] ?? labels['app.kubernetes.io/version']
}

/** `{ version }` for a record's destination, or nothing when the workload has no version label. */
export function versionField(labels: Readonly<Record<string, string>>): { version?: string } {
  const v = versionOf(labels)
  return v === undefined ? {} : { version: v }
}

/** The request access log and the Istio request metrics, shared by both L7 pipelines. */
export class RequestTelemetry {
  readonly #metrics: HttpMetrics
  readonly #log: Logger
  readonly #activity: { seen: number } | undefined

  /** activity: ConnectionTelemetry.activity, whose `seen` each finished request bumps (run/memory.ts). */
  constructor(metrics: HttpMetrics, log: Logger, activity?: { seen: number }) {
    this.#metrics = metrics
    this.#log = log
    this.#activity = activity
  }

  begin(start: RequestStart): RequestRecord {
    return new RequestRecord(start, this.#metrics, this.#log, this.#activity)
  }
}

export class RequestRecord {
  readonly #metrics: HttpMetrics
  readonly #log: Logger
  readonly #activity: { seen: number } | undefined
  readonly #start: RequestStart
  readonly #startedAt: number
  #dst: RequestDestination
  #security: Security
  #route: string | undefined
  #rule: number | undefined
  #ruleName: string | undefined
  #upstream: string | undefined
  #requestId: string | undefined
  #traceId: string | undefined
  #respondedAt: number | undefined
  #finished = false

  constructor(start: RequestStart, metrics: HttpMetrics, log: Logger, activity?: { seen: number }) {
    this.#start = start
    this.#startedAt = start.startedAt ?? performance.now()
    this.#dst = start.dst
    this.#security = start.security
    this.#requestId = start.requestId
    this.#traceId = start.traceId
    this.#metrics = metrics
    this.#log = log
    this.#activity = activity
  }

  get finished(): boolean {
    return this.#finished
  }

  /** What the pipeline learned. Ignored once finished. */
  update(f: RequestFacts): void {
    if (this.#finished) return
    if (f.dst) this.#dst = { ...this.#dst, ...f.dst }
    if (f.route !== undefined) this.#route = f.route
    if (f.rule !== undefined) this.#rule = f.rule
    if (f.ruleName !== undefined) this.#ruleName = f.ruleName
    if (f.upstream !== undefined) this.#upstream = f.upstream
    if (f.security) this.#security = f.security
    if (f.requestId !== undefined) this.#requestId = f.requestId
    if (f.traceId !== undefined) this.#traceId = f.traceId
  }

  /** The response's headers are on their way to the client (Envoy's %RESPONSE_DURATION%). First call only. */
  responseStarted(): void {
    if (this.#finished || this.#respondedAt !== undefined) return
    this.#respondedAt = performance.now()
  }

  /** The end of the request, however it ended: counted and logged once; later calls are ignored. */
  finish(end: RequestEnd): void {
    if (this.#finished) return
    this.#finished = true
    if (this.#activity) this.#activity.seen++
    const durationMs = performance.now() - this.#startedAt
    const flags = formatFlags(end.flags)
    const { reporter, src, protocol } = this.#start
    const dst = this.#dst
    const labels: HttpLabels = {
      reporter,
      source_workload: src.workload?.name ?? UNKNOWN,
      source_workload_namespace: src.workload?.namespace ?? UNKNOWN,
      source_principal: src.principal ?? UNKNOWN,
      destination_service: dst.service ?? UNKNOWN,
      destination_workload: dst.workload?.name ?? UNKNOWN,
      destination_workload_namespace: dst.workload?.namespace ?? UNKNOWN,
      destination_principal: dst.principal ?? UNKNOWN,
      destination_version: dst.version ?? UNKNOWN,
      connection_security_policy: this.#security,
      request_protocol: protocol,
      response_code: codeLabel(end.status),
      grpc_response_status: grpcLabel(protocol, end.grpcStatus),
      response_flags: flags,
    }
    this.#metrics.request(labels, durationMs, end.requestBytes, end.responseBytes)
    // The line's object is not even built when the access log is off (level above info).
    if (this.#log.isLevelEnabled('info')) this.#write(end, flags, durationMs)
  }

  #write(end: RequestEnd, flags: string, durationMs: number): void {
    const { reporter, listener, protocol, src, method, authority, path } = this.#start
    const dst = this.#dst
    this.#log.info({
      access: 'http', reporter, listener, protocol,
      // Peer-chosen values, bounded so a hostile client cannot choose how big the line is.
      method: clip(method, REQUEST_CLIP.method),
      authority: clip(authority, REQUEST_CLIP.authority),
      path: clip(stripQuery(path), REQUEST_CLIP.path),
      status: end.status,
      grpcStatus: protocol === 'grpc' && end.grpcStatus !== undefined && Number.isFinite(end.grpcStatus) ? end.grpcStatus : null,
      responseFlags: flags,
      route: this.#route ?? null,
      rule: this.#rule ?? null,
      ruleName: this.#ruleName ?? null,
      upstream: this.#upstream ?? null,
      src: { address: src.address ?? null, workload: src.workload?.name ?? UNKNOWN, namespace: src.workload?.namespace ?? UNKNOWN, principal: src.principal ?? UNKNOWN },
      dst: { address: dst.address ?? null, service: dst.service ?? UNKNOWN, workload: dst.workload?.name ?? UNKNOWN, namespace: dst.workload?.namespace ?? UNKNOWN, principal: dst.principal ?? UNKNOWN, version: dst.version ?? UNKNOWN },
      security: this.#security,
      requestBytes: end.requestBytes,
      responseBytes: end.responseBytes,
      durationMs: round3(durationMs),
      responseMs: this.#respondedAt === undefined ? null : round3(this.#respondedAt - this.#startedAt),
      requestId: clip(this.#requestId, REQUEST_CLIP.id) ?? null,
      traceId: clip(this.#traceId, REQUEST_CLIP.id) ?? null,
      error: end.error === undefined ? null : clip(end.error, REQUEST_CLIP.error),
    }, 'request')
  }
}

/** Milliseconds to the microsecond: enough for a log line, short to read. */
function round3(ms: number): number {
  return Math.round(ms * 1000) / 1000
}
