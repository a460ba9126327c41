// Envoy's max_connections for the request path: every upstream connection a pool opens to a
// destination service holds one `connections` slot of that service's circuit breaker, from
// before the dial until the connection closes, in the same count as the service's TCP port
// connections (l4/stages/breaker.ts). Over the limit nothing is dialled: the caller gets an
// UpstreamOverflow at once.
import type { Duplex } from 'node:stream'
import type { CircuitBreakers } from './circuit-breaker.ts'
import { UpstreamOverflow } from './errors.ts'

/** `connect` (l7/pool.ts's Connect), counted against `service`'s maxConnections. */
export function countedConnect(
  breakers: CircuitBreakers,
  service: string,
  /** The limit, or how to read it at each dial (a pool keeps its first connect function across reloads). */
  limit: number | (() => number),
  connect: () => Promise<Duplex>,
): () => Promise<Duplex> {
  return async () => {
    const max = typeof limit === 'number' ? limit : limit()
    const release = breakers.acquire(service, 'connections', max)
    if (!release) throw new UpstreamOverflow(service, 'connections', max)
    let s: Duplex
    try {
      s = await connect()
    } catch (err) {
      release()
      throw err
    }
    // A stream that closed before it was handed over will not emit 'close' again.
    if (s.closed) release()
    else s.once('close', release)
    return s
  }
}
