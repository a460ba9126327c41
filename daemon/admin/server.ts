// The admin listener (127.0.0.1:15000) and the admin socket (/run/hostmesh/admin.sock). Same
// shape as every hostmesh listener: construct with its dependencies, listen() resolves once
// both are bound, close() is graceful, destroy() is not. Endpoints are registered by the
// components that own the data; the server knows none of them.
//
// The TCP port has no authentication: any local uid (a workload's too) reaches loopback, and a
// browser on the host can be pointed at it. So the TCP port answers only requests addressed to
// a loopback name (DNS rebinding), and takes no change: a route that changes state is served
// on the unix socket only, which is 0600 and so opens to the daemon's user and root alone.
import { chmod, lstat, mkdir, unlink } from 'node:fs/promises'
import type { IncomingMessage, Server, ServerResponse } from 'node:http'
import { connect, isIPv4, isIPv6, type AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { dirname } from 'node:path'
import { isLoopback } from '../config/schema.ts'
import { BACKLOG, bind, stopListening, type SocketSource } from '../listeners/bind.ts'
import { listenerView, type ListenerView } from '../listeners/view.ts'
import { createServer } from '../net/node-http.ts'
import { clip } from '../../base/clip.ts'
import type { Logger } from '../../base/logger.ts'
import { LogThrottle } from '../../base/throttle.ts'
import { Counter, type Registry } from 'prom-client'
import { AdminBindError } from './errors.ts'
import { ADMIN_TIMEOUTS, DEFAULT_ADMIN_MAX_CONNECTIONS } from './limits.ts'

export interface AdminReply {
  readonly status: number
  /** Objects are sent as JSON; strings as they are, with `contentType`. */
  readonly body: unknown
  readonly contentType?: string
}

export type AdminHandler = (req: IncomingMessage, url: URL) => AdminReply | Promise<AdminReply>

export interface AdminRouteOptions {
  /**
   * The route changes the daemon's state: served on the unix socket only (403 on the TCP
   * port). Default: every method but GET.
   */
  readonly mutating?: boolean
}

export interface AdminServerOptions {
  readonly address: string
  readonly port: number
  readonly allowRemote: boolean
  /** The unix socket's path (admin.socket): every route, and the only way to the mutating ones. */
  readonly socket: string
  readonly log: Logger
  /** Connections each of the port and the socket may hold (admin.maxConnections); more are closed at once. */
  readonly maxConnections?: number
  /** Where hostmesh_admin_connections_refused_total goes. */
  readonly registry?: Registry
  /** A request head's deadline (default ADMIN_TIMEOUTS.headersTimeout); tests shorten it. */
  readonly headersTimeoutMs?: number
}

interface Route {
  readonly handler: AdminHandler
  readonly mutating: boolean
}

/** Which listener a request came in on. */
type Transport = 'tcp' | 'unix'

export class AdminServer {
  readonly #opts: AdminServerOptions
  readonly #routes = new Map<string, Map<string, Route>>()
  readonly #server: Server
  readonly #socket: Server
  readonly #onClose: (() => void)[] = []

  readonly #throttle: LogThrottle

  constructor(opts: AdminServerOptions) {
    this.#opts = opts
    this.#throttle = new LogThrottle(opts.log)
    const refused = new Counter({ name: 'hostmesh_admin_connections_refused_total', help: 'Admin connections closed by the server before an answer, by transport (tcp: the port; unix: the socket) and reason (connections: over admin.maxConnections; bad_request: not HTTP; timeout: the request was not complete in time).', labelNames: ['transport', 'reason'], registers: opts.registry ? [opts.registry] : [] })
    // Each has its own cap: a flood of the TCP port, which any local uid can reach, leaves the
    // socket (the daemon's user and root, `hostmesh status`) its connections.
    const serve = (transport: Transport): Server => {
      for (const reason of ['connections', 'bad_request', 'timeout']) refused.inc({ transport, reason }, 0)
      const headersTimeout = opts.headersTimeoutMs ?? ADMIN_TIMEOUTS.headersTimeout
      const server = createServer({ ...ADMIN_TIMEOUTS, headersTimeout, requestTimeout: Math.max(headersTimeout, ADMIN_TIMEOUTS.requestTimeout) }, (req, res) => this.#serve(req, res, transport))
      server.maxConnections = opts.maxConnections ?? DEFAULT_ADMIN_MAX_CONNECTIONS
      server.on('drop', () => {
        refused.inc({ transport, reason: 'connections' })
        this.#throttle.warn(`admin-${transport}-connections`, { transport, maxConnections: server.maxConnections }, 'admin connection closed: over admin.maxConnections')
      })
      // Node's own answer to a client error, counted: 408 for a request not complete in time
      // (slowloris), 400 for anything else, then the connection closes.
      server.on('clientError', (err: NodeJS.ErrnoException, socket: Duplex) => {
        const timeout = err.code === 'ERR_HTTP_REQUEST_TIMEOUT'
        if (err.code !== 'ECONNRESET') {
          refused.inc({ transport, reason: timeout ? 'timeout' : 'bad_request' })
          this.#throttle.warn(`admin-${transport}-client-error`, { transport, code: err.code }, 'admin connection closed: not a complete HTTP request')
        }
        if (socket.writable) socket.end(timeout ? 'HTTP/1.1 408 Request Timeout\r\nconnection: close\r\ncontent-length: 0\r\n\r\n' : 'HTTP/1.1 400 Bad Request\r\nconnection: close\r\ncontent-length: 0\r\n\r\n')
        // A client that does not read its answer does not keep the connection.
        setTimeout(() => socket.destroy(), 1000).unref()
      })
      return server
    }
    this.#server = serve('tcp')
    this.#socket = serve('unix')
  }

  /**
   * Registers `handler` for METHOD path. A path registered twice is a programming error. A
   * mutating route (by default every method but GET) is served on the unix socket only.
   */
  route(method: 'GET' | 'POST', path: string, handler: AdminHandler, options: AdminRouteOptions = {}): void {
    let byMethod = this.#routes.get(path)
    if (!byMethod) this.#routes.set(path, (byMethod = new Map()))
    if (byMethod.has(method)) throw new Error(`admin route ${method} ${path} registered twice`)
    byMethod.set(method, { handler, mutating: options.mutating ?? method !== 'GET' })
  }

  /** Binds the TCP port, then the unix socket; either failing is an AdminBindError and leaves nothing bound. */
  async listen(from?: SocketSource): Promise<AddressInfo> {
    const { address, port, allowRemote } = this.#opts
    // Checked here as well as in config validation: the listener must be safe on its own.
    if (!allowRemote && !isLoopback(address)) {
      throw new AdminBindError(`refusing to bind the admin port to ${address}: it has no authentication; bind to loopback or set admin.allowRemote: true`)
    }
    let bound: AddressInfo
    try {
      bound = await bind(this.#server, address, port, from)
    } catch (err) {
      throw new AdminBindError(`cannot bind the admin port to ${address}:${port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
    }
    try {
      await this.#bindSocket()
    } catch (err) {
      stopListening(this.#server)
      stopListening(this.#socket)
      throw err
    }
    return bound
  }

  /** Makes room for the socket (its directory, a stale file), then listens on it. */
  async #bindSocket(): Promise<void> {
    const { socket } = this.#opts
    const failed = (err: unknown, what: string): AdminBindError => {
      if (err instanceof AdminBindError) return err
      const code = (err as NodeJS.ErrnoException).code ?? (err as Error).message
      const hint = ['EACCES', 'EPERM', 'ENOENT', 'EROFS'].includes(code)
        ? '; under systemd RuntimeDirectory=hostmesh makes /run/hostmesh, elsewhere set admin.socket to a path this user can write' : ''
      return new AdminBindError(`cannot ${what}: ${code}${hint}`, { cause: err })
    }
    // /run/hostmesh comes from systemd (RuntimeDirectory=); outside systemd, one missing
    // level is made here.
    await mkdir(dirname(socket), { mode: 0o750 }).catch((err: NodeJS.ErrnoException) => {
      if (err.code !== 'EEXIST') throw failed(err, `create the admin socket's directory ${dirname(socket)}`)
    })
    try {
      if (await clearStaleSocket(socket)) this.#opts.log.info({ socket }, 'removed a stale admin socket (nothing answered on it)')
      await listenOnSocket(this.#socket, socket)
    } catch (err) {
      throw failed(err, `bind the admin socket ${socket}`)
    }
  }

  /** Runs `stop` when the admin port closes: background work of an endpoint (a sampling timer) ends with it. */
  onClose(stop: () => void): void {
    this.#onClose.push(stop)
  }

  /** For /stats: the admin listener's addresses (the socket's path too) and open connections. */
  async view(): Promise<ListenerView> {
    const tcp = await listenerView('admin', [this.#server])
    if (!this.#socket.listening) return tcp
    const onSocket = await new Promise<number>((resolve) => this.#socket.getConnections((err, n) => resolve(err ? 0 : n)))
    return { ...tcp, addresses: [...tcp.addresses, this.#opts.socket], connections: tcp.connections + onSocket }
  }

  /** Stops accepting, lets in-flight requests finish, then resolves. The socket file is removed. */
  async close(): Promise<void> {
    this.#stopBackground()
    this.#throttle.close()
    await Promise.all([this.#server, this.#socket].map((server) => new Promise<void>((resolve) => {
      if (!server.listening) return resolve()
      // Closing a listening unix socket unlinks its file (libuv).
      server.close(() => resolve())
      server.closeIdleConnections()
    })))
  }

  destroy(): void {
    this.#stopBackground()
    this.#throttle.close()
    for (const server of [this.#server, this.#socket]) {
      server.closeAllConnections()
      stopListening(server)
    }
  }

  #stopBackground(): void {
    for (const stop of this.#onClose.splice(0)) stop()
  }

  #serve(req: IncomingMessage, res: ServerResponse, transport: Transport): void {
    this.#handle(req, res, transport).catch((err: unknown) => {
      // Last resort: an admin request must never take the daemon down.
      this.#opts.log.error({ err }, 'admin request failed')
      if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' })
      res.end()
    })
  }

  async #handle(req: IncomingMessage, res: ServerResponse, transport: Transport): Promise<void> {
    let url: URL | undefined
    try {
      // Only origin-form targets ("/path?query"); "//x" would otherwise parse as a host.
      if ((req.url ?? '').startsWith('/') && !(req.url ?? '').startsWith('//')) url = new URL(req.url!, 'http://admin')
    } catch { /* answered below */ }
    const byMethod = url ? this.#routes.get(url.pathname) : undefined
    const host = req.headers.host
    let reply: AdminReply
    if (!url) {
      reply = { status: 400, body: { error: 'bad request target; expected a path such as /ready' } }
    } else if (transport === 'tcp' && !this.#opts.allowRemote && host !== undefined && !isLoopbackHost(host)) {
      // DNS rebinding: a page of evil.example whose name then resolves to 127.0.0.1 reads the
      // port as its own origin. Its requests still say "Host: evil.example". No browser
      // reaches the unix socket, so it has no such rule.
      const value = clip(host, 100)
      reply = { status: 403, body: { error: `Host header ${JSON.stringify(value)} refused: the admin port answers only requests addressed to localhost, 127.0.0.1 or [::1] (this stops DNS rebinding); admin.allowRemote: true lifts this`, header: 'host', value } }
    } else if (req.method !== 'GET' && req.method !== 'HEAD' && req.headers.origin !== undefined) {
      // A web page can POST to 127.0.0.1 without asking (a "simple" request), and the admin
      // port has no authentication: requests that change something must not come from one.
      reply = { status: 403, body: { error: `${req.method} with an Origin header (${clip(req.headers.origin, 100)}) refused: the admin port takes changes only from local tools such as curl, not from web pages`, header: 'origin' } }
    } else if (!byMethod) {
      reply = { status: 404, body: { error: `no admin endpoint ${url.pathname}`, endpoints: [...this.#routes.keys()].sort() } }
    } else {
      const route = byMethod.get(req.method ?? 'GET')
      if (!route) {
        res.setHeader('allow', [...byMethod.keys()].join(', '))
        reply = { status: 405, body: { error: `${req.method} not allowed on ${url.pathname}`, allow: [...byMethod.keys()] } }
      } else if (route.mutating && transport === 'tcp') {
        // Any local uid, a workload's included, reaches loopback; the socket opens to the
        // daemon's user and root only.
        const target = url.pathname + (url.search.length <= 200 ? url.search : '')
        const command = `curl --unix-socket ${shellQuote(this.#opts.socket)} -X ${req.method} ${shellQuote(`http://localhost${target}`, true)}`
        reply = { status: 403, body: { error: `${req.method} ${url.pathname} changes the daemon's state, which the admin TCP port does not take (any local user can reach it); send it to the admin socket ${this.#opts.socket}, which only the daemon's user and root can open: ${command}`, socket: this.#opts.socket, command } }
      } else {
        try {
          reply = await route.handler(req, url)
        } catch (err) {
          this.#opts.log.error({ err, path: url.pathname }, 'admin handler failed')
          reply = { status: 500, body: { error: 'internal error; see the daemon log' } }
        }
      }
    }
    const isText = typeof reply.body === 'string'
    const payload = isText ? (reply.body as string) : `${JSON.stringify(reply.body, null, 2)}\n`
    res.writeHead(reply.status, {
      'content-type': reply.contentType ?? (isText ? 'text/plain; charset=utf-8' : 'application/json'),
      'content-length': Buffer.byteLength(payload),
      'cache-control': 'no-store',
    })
    res.end(req.method === 'HEAD' ? undefined : payload)
  }
}

/**
 * Whether a Host header names loopback: `localhost`, `*.localhost`, `127.x.x.x` or `[::1]`,
 * each with an optional port. A DNS name other than localhost may resolve anywhere, so it
 * could be a rebound attacker's.
 */
export function isLoopbackHost(host: string): boolean {
  const m = /^(?:\[([0-9a-f:.]+)\]|([^:[\]]+))(?::\d{1,5})?$/i.exec(host)
  if (!m) return false
  if (m[1] !== undefined) return isIPv6(m[1]) && new URL(`http://[${m[1]}]`).hostname === '[::1]'
  const name = m[2]!.toLowerCase()
  if (isIPv4(name)) return name.startsWith('127.')
  return /^([a-z0-9]([-a-z0-9]*[a-z0-9])?\.)*localhost$/.test(name)
}

/** `s` as one word for sh: as it is when that is safe, else in single quotes. */
function shellQuote(s: string, always = false): string {
  return !always && /^[\w@%+=:,./-]+$/.test(s) ? s : `'${s.replaceAll("'", "'\\''")}'`
}

/**
 * Makes room for the admin socket at `path`: a socket nothing answers on is left from a
 * daemon that did not close (killed, crashed), and is removed (returns true). One that answers
 * belongs to a running daemon and is never taken over; anything that is not a socket is never
 * removed.
 */
async function clearStaleSocket(path: string): Promise<boolean> {
  let stat
  try {
    stat = await lstat(path)
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code === 'ENOENT') return false
    throw err
  }
  if (!stat.isSocket()) throw new AdminBindError(`cannot bind the admin socket ${path}: EEXIST (it exists and is not a socket; hostmesh does not remove it)`)
  const answer = await probe(path)
  if (answer === 'answers') throw new AdminBindError(`cannot bind the admin socket ${path}: EADDRINUSE (a running process answers on it: another hostmesh with the same admin.socket?)`)
  if (answer !== 'ECONNREFUSED') throw new AdminBindError(`cannot bind the admin socket ${path}: ${answer} (an existing socket there could not be checked, so it is left alone)`)
  await unlink(path).catch((err: NodeJS.ErrnoException) => { if (err.code !== 'ENOENT') throw err })
  return true
}

/** Connects to the unix socket at `path`: 'answers', or the errno of the failure. */
function probe(path: string): Promise<string> {
  return new Promise((resolve) => {
    const s = connect(path)
    const done = (result: string): void => {
      clearTimeout(timer)
      s.destroy()
      resolve(result)
    }
    // A listener that takes longer than this is alive but busy: still not stale.
    const timer = setTimeout(() => done('ETIMEDOUT'), 1000)
    s.once('connect', () => done('answers'))
    s.once('error', (err: NodeJS.ErrnoException) => done(err.code ?? err.message))
  })
}

/**
 * Listens on the unix socket at `path`, created 0600: only the daemon's user (and root) can
 * connect. The umask covers the moment between bind(2) and the chmod, in which the file would
 * otherwise have the process's default mode; the bind happens inside listen(), synchronously.
 */
async function listenOnSocket(server: Server, path: string): Promise<void> {
  const umask = process.umask(0o177)
  let listening: Promise<void>
  try {
    listening = new Promise((resolve, reject) => {
      server.once('error', reject)
      server.listen({ path, backlog: BACKLOG }, () => {
        server.off('error', reject)
        resolve()
      })
    })
  } finally {
    process.umask(umask)
  }
  await listening
  await chmod(path, 0o600)
}
