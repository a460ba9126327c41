// What the source host's per-connection path knows about one connection a local workload
// opened, filled in stage by stage (outbound.ts): who sent it (the listener names the source
// workload), where it was headed, what that is in the snapshot, and the upstream once there is
// one. The record is the connection's one access-log record (telemetry/connection.ts).
import type { Duplex } from 'node:stream'
import type { Socket } from 'node:net'
import type { Logger } from '../../base/logger.ts'
import type { ServicePortInfo, Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import type { Target } from '../balance/target.ts'
import type { ConnectionRecord } from '../telemetry/connection.ts'

export interface OutboundConnection {
  readonly socket: Socket
  /** The workload the accepting listener captures for. */
  readonly source: WorkloadInfo
  /** The listener's port: a connection that was not redirected arrives addressed to it. */
  readonly capturePort: number
  readonly record: ConnectionRecord
  readonly log: Logger
  /** original-dst: where the workload was connecting to, and the same as `ip:port`. */
  dst?: { readonly address: string; readonly port: number }
  dialled?: string
  /** lookup: the snapshot the connection is decided with, and what its destination is there. */
  snapshot?: Snapshot
  destination?: Destination
  /** tcp-route (or lookup, for a workload dialled directly): the endpoints to choose from. */
  target?: Target
  /** endpoint, or passthrough: the connection to splice with. */
  upstream?: Duplex
}

/** What the original destination is in the snapshot. */
export type Destination =
  /** A Service port (tcp: spliced; http, http2, grpc: the L7 pipeline). */
  | { readonly kind: 'service'; readonly port: ServicePortInfo }
  /** A mesh workload dialled at its own address, not through a Service. */
  | { readonly kind: 'workload' }
  /** Not in the mesh (or no policy yet): outboundTrafficPolicy decides. */
  | { readonly kind: 'unknown' }

/** A connection that is no workload's to make, or goes nowhere: NR, and closed. */
export function drop(x: OutboundConnection, why: string): void {
  x.record.refuse('NR', why)
  x.socket.destroy()
}
