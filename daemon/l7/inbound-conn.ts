// What the inbound pipeline knows about a connection that arrived for a local workload: the
// verified peer (HBONE) or none (PERMISSIVE plaintext), and the workload port it is for.
import type { WorkloadInfo } from '../../policy/snapshot.ts'
import type { Side } from '../telemetry/connection.ts'

export interface InboundConn {
  readonly listener: 'hbone' | 'inbound-plaintext'
  readonly workload: WorkloadInfo
  /** The workload's address and port the connection is for. */
  readonly address: string
  readonly port: number
  /** The peer's verified SPIFFE ID; absent for plaintext. */
  readonly peer?: string
  /** The source as the record names it (address, and workload when the source said which and it matches the peer). */
  readonly src: Side
  /** `<name>.<namespace>` of the service the source dialled, when it said so and the snapshot knows it. */
  readonly service?: string
  /** The plaintext client's IP, for x-forwarded-for (HBONE: the source host already added it). */
  readonly clientAddress?: string
}
