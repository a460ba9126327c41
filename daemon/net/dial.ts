// Plain TCP from the daemon (its uid is never captured): to a local workload, to an endpoint
// outside the mesh, or to an original destination that ALLOW_ANY lets through.
import { connect, type Socket } from 'node:net'

/**
 * A TCP connection that is up, or an error after `timeoutMs` (the connect timeout, not an
 * idle one). `signal` abandons the attempt (the socket is destroyed at once): the stream that
 * wanted it is gone.
 */
export function dialTcp(host: string, port: number, timeoutMs: number, signal?: AbortSignal): Promise<Socket> {
  return new Promise((resolve, reject) => {
    if (signal?.aborted) return reject(signal.reason)
    // TCP_NODELAY, as on every mesh socket (listeners/outbound.ts).
    const s = connect({ host, port, allowHalfOpen: true, noDelay: true })
    const fail = (err: unknown): void => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', abort)
      s.destroy()
      reject(err)
    }
    const abort = (): void => fail(signal!.reason)
    const timer = setTimeout(() => fail(Object.assign(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' })), timeoutMs)
    signal?.addEventListener('abort', abort, { once: true })
    s.once('connect', () => {
      clearTimeout(timer)
      signal?.removeEventListener('abort', abort)
      s.off('error', fail)
      resolve(s)
    })
    s.once('error', fail)
  })
}
