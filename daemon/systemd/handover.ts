// The sockets systemd hands over at start, and what is handed back: the listeners' view of
// socket activation and the fd store. Listeners take inherited sockets by address and port
// (take), and outbound listeners keep theirs in the fd store (keep/forget). What no listener
// took is closed and dropped from the store, but only once it is certain nobody will: the
// fixed ports right after start, the stored outbound sockets once a policy has bound its
// workloads' listeners (a restart with a broken policy must not throw them away).
import { close } from 'node:fs'
import type { ListenerSockets } from '../listeners/bind.ts'
import type { Logger } from '../../base/logger.ts'
import { OUTBOUND_FD_PREFIX, type InheritedSocket, type InheritedSockets } from './listen-fds.ts'
import type { ServiceManager } from './notify.ts'

const isOutbound = (s: InheritedSocket): boolean => s.name.startsWith(OUTBOUND_FD_PREFIX)

export class SocketHandover implements ListenerSockets {
  readonly #inherited: InheritedSockets
  readonly #manager: ServiceManager
  readonly #log: Logger

  constructor(inherited: InheritedSockets, manager: ServiceManager, log: Logger) {
    this.#inherited = inherited
    this.#manager = manager
    this.#log = log
  }

  /** Workload key → the outbound port its stored socket has. */
  outboundPorts(): Map<string, number> {
    return this.#inherited.outboundPorts()
  }

  take(host: string, port: number): number | undefined {
    const fd = this.#inherited.take(host, port)
    // Inherited sockets on this port at other addresses (a workload whose match changed while
    // hostmesh was down) would make the fresh bind fail: they go first.
    if (fd === undefined) this.#release(this.#inherited.evict(port), 'it is bound to another address than the listener wants')
    return fd
  }

  keep(name: string, fds: readonly number[]): void {
    this.#manager.storeFds(name, fds)
  }

  forget(name: string): void {
    this.#manager.removeFds(name)
  }

  /** After start: inherited fixed-port sockets that no listener took. */
  releaseFixed(): void {
    this.#release(this.#inherited.drainUnclaimed((s) => !isOutbound(s)), 'no listener wants it (hostmesh.socket and ports: differ)')
  }

  /** Once a policy's outbound listeners are bound: stored sockets of workloads that are gone or moved. */
  releaseOutbound(): void {
    this.#release(this.#inherited.drainUnclaimed(), 'no local workload has this port any more')
  }

  #release(sockets: readonly InheritedSocket[], why: string): void {
    const forgotten = new Set<string>()
    for (const s of sockets) {
      this.#log.warn({ fd: s.fd, name: s.name, address: `${s.address}:${s.port}`, why }, 'closing an inherited socket')
      close(s.fd, () => undefined)
      // FDSTOREREMOVE drops every fd of that name; a listener that still uses the name
      // stores its own sockets again (DataPlane.storeAll).
      if (isOutbound(s) && !forgotten.has(s.name)) {
        forgotten.add(s.name)
        this.#manager.removeFds(s.name)
      }
    }
  }
}
