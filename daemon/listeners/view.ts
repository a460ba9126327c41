// What /stats shows of a listener: where it listens and how many accepted connections are
// open there now. Read from the sockets themselves (getConnections), so it cannot drift from
// what the kernel holds.
import type { AddressInfo } from 'node:net'
import { formatAuthority } from '../tunnel/authority.ts'

/** A net.Server or http.Server: anything that listens and counts its connections. */
interface Listening {
  address(): AddressInfo | string | null
  getConnections(cb: (err: Error | null, count: number) => void): unknown
}

export interface ListenerView {
  /** admin, hbone, inbound-plaintext or outbound. */
  readonly name: string
  /** `ip:port` (`[ip6]:port`) of every bound socket. */
  readonly addresses: readonly string[]
  /** Accepted connections open now. */
  readonly connections: number
  /** outbound: the local workload it captures for. */
  readonly workload?: string
  /** hbone: CONNECT tunnels open now (many share one connection). */
  readonly tunnels?: number
}

export async function listenerView(name: string, servers: readonly Listening[], extra: { workload?: string; tunnels?: number } = {}): Promise<ListenerView> {
  const addresses: string[] = []
  let connections = 0
  for (const server of servers) {
    const a = server.address()
    if (a === null || typeof a === 'string') continue // not listening (closed, or a unix socket)
    addresses.push(formatAuthority(a.address, a.port))
    connections += await new Promise<number>((resolve) => server.getConnections((err, n) => resolve(err ? 0 : n)))
  }
  return { name, addresses, connections, ...extra }
}
