// One outbound listener per local workload, on the port its iptables rule redirects to, so
// the listener that accepts a connection names the source workload. Per connection, in order:
//   original destination (SO_ORIGINAL_DST) → not captured? refuse → snapshot lookup →
//   mesh service port: TCPRoute weights → endpoint (the DestinationPolicy's load balancer,
//   skipping ejected endpoints; a failed connect tries another, a bounded number of times) →
//   HBONE tunnel as the source workload (or plain TCP to an endpoint outside the mesh)
//   unknown destination: ALLOW_ANY passes through as plain TCP, REGISTRY_ONLY refuses.
import { createServer, isIP, type Server, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import { originalDst } from '../intercept/origdst.ts'
import { addressKey, canonicalIp } from '../../policy/ip.ts'
import { defaultDestination } from '../../policy/compile.ts'
import type { DestinationSettings, Endpoint, ServicePortInfo, Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import type { Logger } from '../../base/logger.ts'
import { remoteOf, type ConnectionRecord, type ConnectionTelemetry } from '../telemetry/connection.ts'
import { formatAuthority } from '../tunnel/authority.ts'
import type { Balancer } from '../balance/balancer.ts'
import { TunnelError, type HboneClientPool } from '../tunnel/client-pool.ts'
import { splice } from '../tunnel/splice.ts'
import { bind, closeServer, dialTcp, serverFd, SocketSet, stopListening, type SocketSource } from './bind.ts'
import { listenerView, type ListenerView } from './view.ts'
import type { OutboundHttp } from '../l7/outbound.ts'

export interface OutboundDeps {
  readonly snapshot: () => Snapshot | undefined
  readonly pool: HboneClientPool
  readonly balancer: Balancer
  readonly outboundTrafficPolicy: 'ALLOW_ANY' | 'REGISTRY_ONLY'
  readonly log: Logger
  readonly telemetry: ConnectionTelemetry
  readonly connectTimeoutMs?: number
  /** The request path, for http/http2/grpc service ports. */
  readonly http: OutboundHttp
}

/** Endpoints tried per connection before giving up. */
export const MAX_CONNECT_ATTEMPTS = 3

export class OutboundListener {
  readonly port: number
  readonly workload: WorkloadInfo
  readonly #deps: OutboundDeps
  readonly #servers: Server[] = []
  readonly #sockets = new SocketSet()

  constructor(workload: WorkloadInfo, port: number, deps: OutboundDeps) {
    this.workload = workload
    this.port = port
    this.#deps = deps
  }

  /**
   * Host processes (uid match) are redirected by OUTPUT to loopback, so the listener binds
   * 127.0.0.1 and ::1 only: nothing off-host can reach it. Containers (address match) arrive
   * through PREROUTING on a bridge address, so that listener binds all addresses and accepts
   * only the container's own source address.
   */
  async listen(from?: SocketSource): Promise<void> {
    for (const host of this.#hosts()) {
      const server = createServer({ allowHalfOpen: true }, (s) => this.#accept(s))
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
    const log = this.#deps.log
    // One record per accepted connection, whatever becomes of it (docs/mesh.md, "Access log").
    const record = this.#deps.telemetry.begin({
      reporter: 'source', listener: 'outbound',
      src: { address: remoteOf(socket), workload: this.workload, principal: this.workload.identity },
      dst: {}, security: 'none',
    })
    const drop = (why: string): void => {
      record.refuse('NR', why)
      socket.destroy()
    }
    if (this.workload.match.address !== undefined && canonicalIp(socket.remoteAddress ?? '') !== canonicalIp(this.workload.match.address)) {
      log.warn({ workload: this.workload.key, from: socket.remoteAddress }, 'outbound connection from an address that is not the workload\'s; closing')
      return drop('not from the workload\'s address')
    }
    let dst: { address: string; port: number }
    try {
      dst = originalDst(socket)
    } catch (err) {
      log.warn({ workload: this.workload.key, err: (err as Error).message }, 'outbound connection without an original destination; closing')
      return drop(`no original destination: ${(err as Error).message}`)
    }
    const to = formatAuthority(dst.address, dst.port)
    record.update({ dst: { address: to } })
    // conntrack reports the listener's own address for a connection that was not
    // redirected: someone dialled the capture port directly. It is not this workload's.
    if (dst.port === this.port && (canonicalIp(dst.address) === canonicalIp(socket.localAddress ?? ''))) {
      log.warn({ workload: this.workload.key, from: socket.remoteAddress }, 'direct connection to an outbound capture port (not redirected); closing')
      return drop('a direct connection to the capture port')
    }
    const snap = this.#deps.snapshot()
    if (!snap) return this.#unknown(socket, dst, record)
    const sp = snap.byDestination.get(addressKey(dst.address, dst.port))
    if (sp && sp.protocol !== 'tcp') return this.#http(socket, snap, sp, to, record)
    if (sp) return void this.#mesh(socket, snap, routeOf(snap, sp), dst, record)
    // A mesh workload dialled at its own address (not through a Service): still a tunnel
    // with identities and authorization, never a plaintext pass-through (the daemon's own
    // connections are not captured, so passing through would skip the destination's policy).
    const w = snap.workloadByAddress.get(addressKey(dst.address, dst.port))
    const node = w ? snap.nodes.get(w.node) : undefined
    if (w && node) {
      return void this.#mesh(socket, snap, {
        key: `workload:${w.key}:${dst.port}`, service: `${w.name}.${w.namespace}`, settings: defaultDestination(),
        endpoints: [{ address: dst.address, port: dst.port, workload: w.key, identity: w.identity, node }],
      }, dst, record)
    }
    this.#unknown(socket, dst, record)
  }

  /**
   * An HTTP service port: the connection goes to the request path (l7/outbound.ts), which
   * routes and balances each request on its own. The connection's record counts its bytes.
   */
  #http(socket: Socket, snap: Snapshot, sp: ServicePortInfo, to: string, record: ConnectionRecord): void {
    const svc = snap.services.get(sp.service)
    if (svc) record.update({ dst: { service: `${svc.name}.${svc.namespace}` } })
    record.open()
    socket.once('close', () => record.close(socket.bytesRead, socket.bytesWritten))
    const ip = socket.remoteAddress
    this.#deps.http.serve(socket, { source: this.workload, servicePort: sp.key, clientAddress: ip ? canonicalIp(ip) : undefined, dialled: to }, sp.protocol)
  }

  #unknown(socket: Socket, dst: { address: string; port: number }, record: ConnectionRecord): void {
    // Istio's names for traffic outside the mesh: one series each, whatever the address.
    const registryOnly = this.#deps.outboundTrafficPolicy === 'REGISTRY_ONLY'
    record.update({ dst: { service: registryOnly ? 'BlackHoleCluster' : 'PassthroughCluster' } })
    if (registryOnly) {
      record.refuse('NR', 'REGISTRY_ONLY: not a mesh service')
      return void socket.destroy()
    }
    // ALLOW_ANY: plain TCP from the daemon (its uid is never captured).
    record.update({ upstream: formatAuthority(dst.address, dst.port) })
    dialTcp(dst.address, dst.port, this.#deps.connectTimeoutMs ?? 5000).then((upstream) => {
      if (socket.destroyed) {
        upstream.destroy()
        return record.refuse('DC', 'the client closed the connection before it was connected')
      }
      this.#join(socket, upstream, record)
    }, (err: NodeJS.ErrnoException) => {
      record.refuse('UF', err.code ?? err.message)
      socket.resetAndDestroy()
    })
  }

  async #mesh(socket: Socket, snap: Snapshot, target: MeshTarget, dst: { address: string; port: number }, record: ConnectionRecord): Promise<void> {
    const settings = target.settings
    const family = isIP(dst.address) === 6 && !/^::ffff:/i.test(dst.address) ? 6 : 4
    const tried = new Set<Endpoint>()
    record.update({ dst: { service: target.service } })
    let last: { flag: 'UF' | 'UAEX'; error: string } = { flag: 'UF', error: 'no endpoint reachable: no endpoints' }
    let denier: Parameters<ConnectionRecord['update']>[0] | undefined
    for (let attempt = 0; attempt < MAX_CONNECT_ATTEMPTS; attempt++) {
      if (socket.destroyed) return record.refuse('DC', 'the client closed the connection before it was connected')
      const ep = this.#deps.balancer.pick(target.key, target.endpoints, settings, tried)
      if (!ep) break
      tried.add(ep)
      const dstWorkload = ep.workload ? snap.workloads.get(ep.workload) : undefined
      const facts = {
        dst: { ...(dstWorkload ? { workload: dstWorkload } : {}), ...(ep.identity ? { principal: ep.identity } : {}) },
        upstream: formatAuthority(ep.address, ep.port),
        security: ep.identity ? 'mutual_tls' as const : 'none' as const,
      }
      record.update(facts)
      const started = Date.now()
      try {
        const upstream = await this.#open(ep, dstWorkload, family, settings.connectionPool.connectTimeoutMs, target.service)
        this.#deps.balancer.success(ep, Date.now() - started)
        if (socket.destroyed) {
          upstream.destroy()
          return record.refuse('DC', 'the client closed the connection before it was connected')
        }
        const end = this.#deps.balancer.begin(ep, target.key)
        upstream.once('close', end)
        return this.#join(socket, upstream, record)
      } catch (err) {
        const message = (err as Error).message
        // A refusal by the destination's policy (401) or a bad request (400) says nothing
        // about the endpoint's health; a connect failure or 503 does. A local problem (no
        // certificate for the source yet) says nothing about the endpoint either.
        const status = err instanceof TunnelError ? err.status : undefined
        const local = (err as { code?: string }).code === 'HOSTMESH_ERR_CERT_UNAVAILABLE'
        if (status !== 401 && status !== 400 && !local) this.#deps.balancer.failure(ep, target.key, target.endpoints, settings)
        // 401 is the destination's AuthorizationPolicy answering: a denial, not an upstream
        // failure, and it stays the outcome even if another endpoint then fails otherwise.
        if (status === 401) {
          last = { flag: 'UAEX', error: `denied by the destination's AuthorizationPolicy: ${message}` }
          denier = facts
        } else if (last.flag !== 'UAEX') last = { flag: 'UF', error: `no endpoint reachable: ${message}` }
        this.#deps.log.debug({ workload: this.workload.key, endpoint: formatAuthority(ep.address, ep.port), err: message }, status === 401 ? 'denied by the destination' : 'endpoint failed; trying another')
      }
    }
    // The record names the endpoint whose answer decided: the one that denied, if one did.
    if (denier) record.update(denier)
    record.refuse(last.flag, last.error)
    socket.resetAndDestroy()
  }

  /**
   * Connects to an endpoint: through HBONE for a mesh workload, plain TCP otherwise. The
   * workload and node addresses of the original destination's family are used when they
   * exist, so an IPv6 connection stays IPv6 end to end.
   */
  #open(ep: Endpoint, w: WorkloadInfo | undefined, family: 4 | 6, timeoutMs: number, service: string): Promise<Duplex> {
    return connectEndpoint(this.#deps.pool, this.workload, ep, service, timeoutMs, w, family)
  }

  #join(socket: Socket, upstream: Duplex, record: ConnectionRecord): void {
    record.open()
    splice(socket, upstream, (r) => record.close(r.aToB, r.bToA, r.error?.message))
  }
}

/** Where a mesh connection goes: the endpoints to choose from, and how. */
interface MeshTarget {
  /** Balancer key: the service port, or the workload dialled directly. */
  readonly key: string
  /** `<name>.<namespace>`, for telemetry. */
  readonly service: string
  readonly endpoints: readonly Endpoint[]
  readonly settings: DestinationSettings
}

/** The service port a connection goes to: a TCPRoute's weighted backends, or the port itself. */
function routeOf(snap: Snapshot, sp: ServicePortInfo): MeshTarget {
  let port = sp
  const route = sp.route
  if (route?.kind === 'tcp' && route.backends.total > 0) {
    const r = Math.random() * route.backends.total
    const i = route.backends.cumulative.findIndex((c) => c > r)
    port = snap.servicePorts.get(route.backends.backends[i]!.servicePort) ?? sp
  }
  const service = snap.services.get(port.service)
  return { key: port.key, service: service ? `${service.name}.${service.namespace}` : port.service, endpoints: port.endpoints, settings: service?.destination ?? defaultDestination() }
}

/**
 * Connects to an endpoint as `source`: through HBONE for a mesh workload, plain TCP otherwise.
 * The workload and node addresses of `family` are used when they exist, so an IPv6 connection
 * stays IPv6 end to end.
 */
export function connectEndpoint(pool: HboneClientPool, source: WorkloadInfo, ep: Endpoint, service: string, timeoutMs: number, w: WorkloadInfo | undefined, family: 4 | 6 = 4): Promise<Duplex> {
  const sameFamily = (list: readonly string[] | undefined, fallback: string): string => list?.find((a) => isIP(a) === family) ?? fallback
  if (ep.identity && ep.node) {
    return pool.open({
      source: source.identity, destination: ep.identity,
      node: { address: sameFamily(ep.node.addresses, ep.node.addresses[0]!), port: ep.node.hbonePort },
      address: sameFamily(w?.addresses, ep.address), port: ep.port,
      baggage: `k8s.namespace.name=${source.namespace},k8s.workload.name=${source.name}`,
      sourceWorkload: source.key,
      destinationService: service,
      timeoutMs,
    })
  }
  return dialTcp(ep.address, ep.port, timeoutMs)
}
