// Binding helpers shared by the listeners: every listener is bound before /ready says so.
import { connect, type AddressInfo, type Server, type Socket } from 'node:net'

/** Listens on host:port; `::` is dual-stack, and falls back to 0.0.0.0 on a host without IPv6. */
export async function bind(server: Server, host: string, port: number): Promise<AddressInfo> {
  try {
    await listenOnce(server, host, port)
  } catch (err) {
    if (host !== '::' || (err as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT') throw err
    await listenOnce(server, '0.0.0.0', port)
  }
  return server.address() as AddressInfo
}

function listenOnce(server: Server, host: string, port: number): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen({ host, port, ipv6Only: false }, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}

/** The accepted sockets of a listener, so a drain that runs out of time can destroy them. */
export class SocketSet {
  readonly #sockets = new Set<Socket>()

  /** Tracks `socket` until it closes. Its errors are the connection's (logged by its owner), never the process's. */
  add(socket: Socket): void {
    this.#sockets.add(socket)
    socket.once('close', () => this.#sockets.delete(socket))
    socket.on('error', () => undefined)
  }

  destroyAll(): void {
    for (const s of this.#sockets) s.destroy()
  }
}

/** A TCP connection that is up, or an error after `timeoutMs` (the connect timeout, not an idle one). */
export function dialTcp(host: string, port: number, timeoutMs: number): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const s = connect({ host, port, allowHalfOpen: true })
    const timer = setTimeout(() => {
      s.destroy()
      reject(Object.assign(new Error(`connect to ${host}:${port} timed out after ${timeoutMs} ms`), { code: 'ETIMEDOUT' }))
    }, timeoutMs)
    s.once('connect', () => {
      clearTimeout(timer)
      s.off('error', onError)
      resolve(s)
    })
    const onError = (err: Error): void => {
      clearTimeout(timer)
      reject(err)
    }
    s.once('error', onError)
  })
}
