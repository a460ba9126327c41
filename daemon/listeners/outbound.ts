// One outbound listener per local workload, on the port its iptables rule redirects to, so
// the listener that accepts a connection names the source workload. It binds, keeps its
// sockets (adopt, fd store, /stats) and runs each accepted connection through the source
// host's per-connection path (l4/outbound.ts), where the order of the steps is.
import { createServer, type Server, type Socket } from 'node:net'
import type { WorkloadInfo } from '../../policy/snapshot.ts'
import { outboundPath, type OutboundPath, type OutboundPathDeps } from '../l4/outbound.ts'
import { bind, closeServer, serverFd, SocketSet, stopListening, type SocketSource } from './bind.ts'
import { listenerView, type ListenerView } from './view.ts'

export type OutboundDeps = OutboundPathDeps

export class OutboundListener {
  readonly port: number
  readonly workload: WorkloadInfo
  readonly #path: OutboundPath
  readonly #servers: Server[] = []
  readonly #sockets = new SocketSet()

  constructor(workload: WorkloadInfo, port: number, deps: OutboundDeps) {
    this.workload = workload
    this.port = port
    this.#path = outboundPath(deps)
  }

  /**
   * Host processes (uid match) are redirected by OUTPUT to loopback, so the listener binds
   * 127.0.0.1 and ::1 only: nothing off-host can reach it. Containers (address match) arrive
   * through PREROUTING on a bridge address, so that listener binds all addresses and accepts
   * only the container's own source address.
   */
  async listen(from?: SocketSource): Promise<void> {
    for (const host of this.#hosts()) {
      // TCP_NODELAY on every mesh socket, as Envoy and HAProxy set it: a proxy's writes are
      // whole reads of the other side, and Nagle would hold a small one for an ACK.
      const server = createServer({ allowHalfOpen: true, noDelay: true }, (s) => this.#accept(s))
      try {
        await bind(server, host, this.port, from)
      } catch (err) {
        if (host === '::1' && (err as NodeJS.ErrnoException).code === 'EADDRNOTAVAIL') continue // no IPv6 loopback
        // Half bound is not bound: release what this listener holds, so a retry can bind.
        for (const s of this.#servers.splice(0)) stopListening(s)
        throw err
      }
      this.#servers.push(server)
    }
  }

  /**
   * Takes over `old`'s listening sockets when they are what this listener would bind (same
   * port, same addresses): a workload edited in place keeps accepting, with no moment in
   * which its port has no listener. `old` keeps its open connections and has nothing left
   * to close but them.
   */
  adopt(old: OutboundListener): boolean {
    if (old.port !== this.port || old.#hosts().join() !== this.#hosts().join() || old.#servers.length === 0 || !old.#servers.every((s) => s.listening)) return false
    for (const server of old.#servers.splice(0)) {
      server.removeAllListeners('connection')
      server.on('connection', (s: Socket) => this.#accept(s))
      this.#servers.push(server)
    }
    return true
  }

  #hosts(): string[] {
    return this.workload.match.uid !== undefined ? ['127.0.0.1', '::1'] : ['::']
  }

  /** The listening sockets' fds (one per address), for the service manager's fd store. */
  fds(): number[] {
    return this.#servers.map(serverFd).filter((fd) => fd !== undefined)
  }

  /** For /stats: addresses and open connections. */
  view(): Promise<ListenerView> {
    return listenerView('outbound', this.#servers, { workload: this.workload.key })
  }

  /** Stops accepting; resolves when its open connections have ended (also after adopt()). */
  async close(): Promise<void> {
    await Promise.all([...this.#servers.map(closeServer), this.#sockets.idle()])
  }

  destroy(): void {
    for (const s of this.#servers) stopListening(s)
    this.#sockets.destroyAll()
  }

  #accept(socket: Socket): void {
    this.#sockets.add(socket)
    this.#path(socket, this.workload, this.port)
  }
}
