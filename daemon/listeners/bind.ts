// Binding helpers shared by the listeners: every listener is bound before /ready says so.
import type { AddressInfo, ListenOptions, Server, Socket } from 'node:net'
import { handleFd } from '../native/addon.ts'

/** Where a listener first looks for its socket: one the service manager passed in (socket activation, fd store). */
export interface SocketSource {
  take(host: string, port: number): number | undefined
  /**
   * Bind fresh sockets with SO_REUSEPORT, so each worker thread binds its own socket on every
   * mesh port and the kernel spreads connections over them (docs/workers.md). Off with one
   * worker: a second daemon started by mistake then fails with EADDRINUSE instead of sharing.
   */
  readonly reusePort?: boolean
}

/** The socket source plus the fd store, for listeners whose ports are not in the socket unit. */
export interface ListenerSockets extends SocketSource {
  /** Hands `fds` to the service manager under `name`, so they outlive a restart. */
  keep(name: string, fds: readonly number[]): void
  /** The listener called `name` is gone for good: the service manager drops its fds. */
  forget(name: string): void
}

/** Binds fresh sockets only: outside systemd, and in tests. */
export const NO_INHERITED_SOCKETS: ListenerSockets = Object.freeze({ take: () => undefined, keep: () => undefined, forget: () => undefined })

/** A worker thread's: fresh sockets in the reuseport group of each port; the fd store is the primary's business. */
export const WORKER_SOCKETS: ListenerSockets = Object.freeze({ take: () => undefined, keep: () => undefined, forget: () => undefined, reusePort: true })

/** `sockets`, binding its fresh sockets with SO_REUSEPORT: the primary's, when worker threads share its ports. */
export function withReusePort(sockets: ListenerSockets): ListenerSockets {
  return { take: (host, port) => sockets.take(host, port), keep: (name, fds) => sockets.keep(name, fds), forget: (name) => sockets.forget(name), reusePort: true }
}

/**
 * Listens on host:port: on the inherited socket for it when `from` has one (connections that
 * queued while hostmesh restarted are then accepted, not refused), else on a new one. `::` is
 * dual-stack, and falls back to 0.0.0.0 on a host without IPv6.
 */
export async function bind(server: Server, host: string, port: number, from?: SocketSource): Promise<AddressInfo> {
  const fd = from?.take(host, port)
  const reusePort = from?.reusePort === true
  if (fd !== undefined) {
    await listenOnce(server, { fd, backlog: BACKLOG })
    return server.address() as AddressInfo
  }
  try {
    await listenOnce(server, { host, port, ipv6Only: false, backlog: BACKLOG, reusePort })
  } catch (err) {
    if (host !== '::' || (err as NodeJS.ErrnoException).code !== 'EAFNOSUPPORT') throw err
    await listenOnce(server, { host: '0.0.0.0', port, backlog: BACKLOG, reusePort })
  }
  return server.address() as AddressInfo
}

/**
 * systemd's Backlog= default (SOMAXCONN), not Node's 511: connections queue here while the
 * daemon restarts, and listen() on an inherited socket sets the backlog again. The kernel caps
 * it at net.core.somaxconn.
 */
export const BACKLOG = 4096

function listenOnce(server: Server, options: ListenOptions | { fd: number; backlog: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    server.once('error', reject)
    server.listen(options as ListenOptions, () => {
      server.off('error', reject)
      resolve()
    })
  })
}

/** The listening socket's fd, to hand to the service manager's fd store. */
export function serverFd(server: Server): number | undefined {
  return handleFd(server)
}

/** Stops listening now, without waiting for open connections (destroy paths). */
export function stopListening(server: Server): void {
  if (server.listening) server.close()
}

export function closeServer(server: Server): Promise<void> {
  return new Promise((resolve) => server.close(() => resolve()))
}

/** The accepted sockets of a listener, so a drain that runs out of time can destroy them. */
export class SocketSet {
  readonly #sockets = new Set<Socket>()
  #waiting: (() => void)[] = []

  /** Tracks `socket` until it closes. Its errors are the connection's (logged by its owner), never the process's. */
  add(socket: Socket): void {
    this.#sockets.add(socket)
    socket.once('close', () => {
      this.#sockets.delete(socket)
      if (this.#sockets.size === 0) for (const resolve of this.#waiting.splice(0)) resolve()
    })
    socket.on('error', () => undefined)
  }

  /** Resolves once no tracked socket is open. */
  idle(): Promise<void> {
    return this.#sockets.size === 0 ? Promise.resolve() : new Promise((resolve) => this.#waiting.push(resolve))
  }

  destroyAll(): void {
    for (const s of this.#sockets) s.destroy()
  }
}
