// The connection carries data: the workload's socket and the upstream joined both ways until
// either ends (tunnel/splice.ts), and the record closed with the bytes each way.
import { splice as join } from '../../tunnel/splice.ts'
import type { OutboundConnection } from '../outbound-connection.ts'

export function splice(x: OutboundConnection): void {
  const { record } = x
  record.open()
  join(x.socket, x.upstream!, (r) => record.close(r.aToB, r.bToA, r.error?.message))
}
