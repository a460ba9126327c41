// What the outbound pipeline knows about a downstream connection: who sent it (the listener
// names the source workload) and which service port it dialled.
import type { WorkloadInfo } from '../../policy/snapshot.ts'

export interface OutboundConn {
  readonly source: WorkloadInfo
  /** The service port's key in the snapshot (`<namespace>/<service>:<port>`). */
  readonly servicePort: string
  /** The client's IP address, for x-forwarded-for. */
  readonly clientAddress: string | undefined
  /** `ip:port` as the client dialled it. */
  readonly dialled: string
}
