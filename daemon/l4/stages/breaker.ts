// The circuit breaker of the destination service tcp-route chose (DestinationPolicy
// connectionPool.maxConnections, Envoy's max_connections, default 1024): a tcp service port's
// connection holds a `connections` slot from here until it ends, however it ends, so the limit
// counts what is open, not what was accepted. Over the limit the workload's connection is
// reset at once (Envoy's tcp_proxy closes it on overflow, flag UO), never queued. The same
// count holds the upstream connections the request path opens to the service
// (limits/counted-connect.ts). A mesh workload dialled at its own address is no destination
// service: not counted.
import type { Logger } from '../../../base/logger.ts'
import type { Stage } from '../../../base/stage.ts'
import { LogThrottle } from '../../../base/throttle.ts'
import type { CircuitBreakers } from '../../limits/circuit-breaker.ts'
import type { OutboundConnection } from '../outbound-connection.ts'

export function breaker(breakers: CircuitBreakers, log: Logger): Stage<OutboundConnection> {
  // A workload over the limit may open thousands of connections a second: one line per
  // window, and the throttle's summary says how many more.
  const throttle = new LogThrottle(log, { perWindow: 1 })
  return async (x, next) => {
    if (x.destination!.kind !== 'service') return next()
    const { socket, record } = x
    const t = x.target!
    const limit = t.settings.connectionPool.maxConnections
    const release = breakers.acquire(t.service, 'connections', limit)
    if (!release) {
      record.update({ dst: { service: t.service } })
      record.refuse('UO', `${t.service}: over its circuit breaker's maxConnections (${limit})`)
      socket.resetAndDestroy()
      throttle.warn('breaker-connections', { workload: x.source.key, service: t.service, maxConnections: limit }, 'connection refused: the destination service is at its circuit breaker\'s maxConnections (UO)')
      return
    }
    // 'close' comes once, whichever stage or side ends the connection; a socket that closed
    // while earlier stages ran will not emit it again.
    if (socket.closed) release()
    else socket.once('close', release)
    await next()
  }
}
