// An http, http2 or grpc Service port: the connection goes to the request path
// (l7/outbound.ts), which routes and balances each request on its own. The connection's
// record counts its bytes. A tcp port goes on to tcp-route.
import type { Stage } from '../../../base/stage.ts'
import { canonicalIp } from '../../../policy/ip.ts'
import type { OutboundHttp } from '../../l7/outbound.ts'
import type { OutboundConnection } from '../outbound-connection.ts'

export function httpService(http: OutboundHttp): Stage<OutboundConnection> {
  return async (x, next) => {
    const d = x.destination!
    if (d.kind !== 'service' || d.port.protocol === 'tcp') return next()
    const { socket, record } = x
    const sp = d.port
    const svc = x.snapshot!.services.get(sp.service)
    if (svc) record.update({ dst: { service: `${svc.name}.${svc.namespace}` } })
    record.open()
    socket.once('close', () => record.close(socket.bytesRead, socket.bytesWritten))
    const ip = socket.remoteAddress
    http.serve(socket, { source: x.source, servicePort: sp.key, clientAddress: ip ? canonicalIp(ip) : undefined, dialled: x.dialled! }, sp.protocol)
  }
}
