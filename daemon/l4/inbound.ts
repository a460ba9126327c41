// The destination host's per-connection path, for a connection to a local workload: an HBONE
// CONNECT stream on :15008 (tunnel/server.ts, once its session has admitted the stream) or a
// plaintext connection on :15006 (listeners/inbound-plaintext.ts). In this order:
//   target (the local workload: the stream's :authority, else 400; or the original
//     destination, else NR)
//   → strict (no verified peer and a STRICT workload: refused, UAEX)
//   → authorize (AuthorizationPolicy with the peer's identity; an http port's CONNECT stage;
//     deny: 401 / closed, UAEX)
//   → tunnel-limits (HBONE: open tunnels in all and per peer host; over: 503 UO)
//   → http-workload (an http/http2/grpc port: accepted, then the request path, l7/inbound.ts)
//   → dial (the workload; abandoned if the downstream goes; HBONE first lets a reset read with
//     the HEADERS arrive; fails: 503 / reset, UF)
//   → reauthorize (the snapshot in force now, which may have changed while connecting)
//   → answer (accepted: HBONE 200; spliced both ways, kept for policy re-checks until it ends).
// How each entry answers, what a refusal costs it and what it knows of the source is its
// InboundEntry (inbound-connection.ts), not a second list. Every connection that reaches a
// workload has one record (telemetry/connection.ts). This file and its stages never import
// listeners/ or run/.
import type { Logger } from '../../base/logger.ts'
import { pipeline } from '../../base/stage.ts'
import type { Snapshot } from '../../policy/snapshot.ts'
import type { InboundHttp } from '../l7/inbound.ts'
import type { InboundConnection, InboundEntry } from './inbound-connection.ts'
import { answer } from './stages/answer.ts'
import { authorize } from './stages/authorize.ts'
import { dial } from './stages/dial.ts'
import { httpWorkload } from './stages/http-workload.ts'
import { reauthorize } from './stages/reauthorize.ts'
import { strict } from './stages/strict.ts'
import { target } from './stages/target.ts'
import { tunnelLimits } from './stages/tunnel-limits.ts'

export interface InboundPathDeps {
  readonly snapshot: () => Snapshot | undefined
  /** The request path for http/http2/grpc workload ports. */
  readonly http: InboundHttp
  readonly connectTimeoutMs?: number
  readonly log: Logger
}

/** Runs the path for one connection, as `entry` took it in. */
export type InboundPath = (entry: InboundEntry) => void

export function inboundPath(deps: InboundPathDeps): InboundPath {
  const run = pipeline<InboundConnection>([
    target(deps.snapshot),
    strict,
    authorize,
    tunnelLimits,
    httpWorkload(deps.http),
    dial(deps.connectTimeoutMs ?? 5000),
    reauthorize(deps.snapshot),
    answer,
  ])
  return (entry) => {
    const x: InboundConnection = { entry }
    run(x).catch((err: Error) => {
      deps.log.error({ workload: x.to?.conn.workload.key, err: err.message }, 'inbound connection failed inside hostmesh; closing')
      x.release?.()
      x.upstream?.destroy()
      entry.downstream.destroy()
    })
  }
}
