// An http, http2 or grpc port of the workload: the connection is accepted and goes to the
// request path (l7/inbound.ts), which authorizes each request. Its record counts the bytes on
// the downstream, and it is kept for policy re-checks until it ends. A tcp port goes on to dial.
import type { Stage } from '../../../base/stage.ts'
import type { InboundHttp } from '../../l7/inbound.ts'
import { countBytes } from '../../tunnel/count.ts'
import type { InboundConnection } from '../inbound-connection.ts'

export function httpWorkload(http: InboundHttp): Stage<InboundConnection> {
  return async (x, next) => {
    const { conn, record, protocol } = x.to!
    if (protocol === 'tcp') return next()
    const down = x.entry.downstream
    x.entry.accept()
    record.open()
    const bytes = countBytes(down)
    const forget = x.entry.keep({ workload: conn.workload, port: conn.port, protocol, close: (reason) => down.destroy(reason) })
    down.once('close', () => {
      forget()
      x.release?.()
      record.close(bytes.read, bytes.written)
    })
    http.serve(down, conn, protocol)
  }
}
