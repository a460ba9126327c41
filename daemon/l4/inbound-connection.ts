// What the destination host's per-connection path (inbound.ts) knows about one connection for
// a local workload, and the one place where its two entries differ: the connection's Entry.
// An HBONE CONNECT stream (tunnel/server.ts) answers with a status on the stream and charges
// its refusals to the peer's session; a plaintext connection (listeners/inbound-plaintext.ts)
// has no peer and is closed or reset. The stages call the entry; they never ask which it is.
import type { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Protocol, Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import type { InboundConn } from '../l7/inbound-conn.ts'
import type { ConnectionRecord } from '../telemetry/connection.ts'

export interface InboundConnection {
  readonly entry: InboundEntry
  /** target: where the connection goes, and the protocol the workload port is read with. */
  to?: InboundTarget & { readonly protocol: Protocol }
  /** tunnel-limits (HBONE): the tunnel slot; released once the connection ends or is refused. */
  release?: () => void
  /** dial: the connection to the workload. */
  upstream?: Socket
}

/** The local workload a connection is for, as its entry found it. */
export interface InboundTarget {
  /** The snapshot it was found in (and is authorized with). */
  readonly snapshot: Snapshot
  /** The workload, its address and port, the peer and the source, as the L7 pipeline takes them too. */
  readonly conn: InboundConn
  /** The connection's one record (telemetry/connection.ts), begun by the entry. */
  readonly record: ConnectionRecord
}

/** Why a connection is not carried, for the entry to answer in its own way. */
export type InboundRefusal =
  /** No verified peer, and the workload is STRICT. */
  | { readonly kind: 'strict' }
  /** AuthorizationPolicy (before the dial, or again after it). */
  | { readonly kind: 'denied'; readonly reason: string }
  /** The workload could not be connected to (`error`: the errno code or message). */
  | { readonly kind: 'unreachable'; readonly error: string }
  /** The downstream went before the workload's connection was up. */
  | { readonly kind: 'gone' }

/** An open connection, where a policy re-check (authz/recheck.ts) finds it. */
export interface KeptConnection {
  readonly workload: WorkloadInfo
  readonly port: number
  readonly protocol: Protocol
  close(reason: Error): void
}

/** How one entry point takes a connection in: everything HBONE and plaintext do differently. */
export interface InboundEntry {
  /** The CONNECT stream, or the accepted socket. */
  readonly downstream: Duplex
  /**
   * The local workload the connection is for, with its record begun; undefined when there is
   * none, and the entry has refused the connection (HBONE: 400; plaintext: NR).
   */
  target(snapshot: Snapshot | undefined): InboundTarget | undefined
  /**
   * HBONE only: a tunnel slot (open tunnels in all and per peer host). Returns its release, or
   * undefined when over a limit (the entry has refused: 503 UO).
   */
  tunnel?(): (() => void) | undefined
  refuse(why: InboundRefusal): void
  /** Before the dial: HBONE lets a reset sent with the HEADERS arrive first. */
  settle?(): Promise<void>
  /** The connection is accepted, before its first byte (HBONE: 200 on the stream). */
  accept(): void
  /** Keeps an open connection for policy re-checks; returns how to forget it once it ends. */
  keep(c: KeptConnection): () => void
}
