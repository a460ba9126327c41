import { randomBytes } from 'node:crypto'
import { connect, createServer, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'

/** A TCP port that was free a moment ago on 127.0.0.1 (the kernel picks it). */
export function freePort(): Promise<number> {
  return new Promise((resolve, reject) => {
    const srv = createServer()
    srv.once('error', reject)
    srv.listen(0, '127.0.0.1', () => {
      const { port } = srv.address() as { port: number }
      srv.close(() => resolve(port))
    })
  })
}

function canBind(port: number): Promise<boolean> {
  return new Promise((resolve) => {
    const srv = createServer()
    srv.once('error', () => resolve(false))
    srv.listen(port, '127.0.0.1', () => srv.close(() => resolve(true)))
  })
}

/**
 * The `ports:` line for a daemon under test: free ports for admin, HBONE and inbound
 * plaintext, and an outbound base with `span` free ports above it; an admin socket of its own
 * (test daemons run side by side); plus `iptables.sync: false`, so an in-process daemon never
 * touches the test machine's own iptables.
 */
export async function daemonPorts(span = 8): Promise<{ yaml: string; admin: number; hbone: number; inboundPlaintext: number; outboundBase: number; socket: string }> {
  const socket = join(tmpdir(), `hostmesh-admin-${process.pid}-${randomBytes(4).toString('hex')}.sock`)
  // Three different ports: the kernel may hand out a port it just gave (and got back) again.
  const picked = new Set<number>()
  for (let i = 0; i < 50 && picked.size < 3; i++) picked.add(await freePort())
  const [admin, hbone, inboundPlaintext] = [...picked] as [number, number, number]
  for (let i = 0; i < 50; i++) {
    const base = 20_000 + Math.floor(Math.random() * 30_000)
    const ok = await Promise.all(Array.from({ length: span }, (_, k) => canBind(base + k)))
    if (ok.every(Boolean) && ![admin, hbone, inboundPlaintext].some((p) => p >= base && p < base + span)) {
      return { yaml: `ports: {admin: ${admin}, outboundBase: ${base}, inboundPlaintext: ${inboundPlaintext}, hbone: ${hbone}}\nadmin: {socket: ${socket}}\niptables: {sync: false}\n`, admin, hbone, inboundPlaintext, outboundBase: base, socket }
    }
  }
  throw new Error('no free port range for a test daemon')
}

/** Both ends of one loopback TCP connection, half-open allowed: [client, server]. */
export function tcpPair(): Promise<[Socket, Socket]> {
  return new Promise((resolve) => {
    let client: Socket
    const srv = createServer({ allowHalfOpen: true }, (server) => { srv.close(); resolve([client, server]) })
    srv.listen(0, '127.0.0.1', () => { client = connect({ port: (srv.address() as { port: number }).port, host: '127.0.0.1', allowHalfOpen: true }) })
  })
}
