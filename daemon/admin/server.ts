// The admin listener (127.0.0.1:15000). Same shape as every hostmesh listener: construct with
// its dependencies, listen() resolves once bound, close() is graceful, destroy() is not.
// Endpoints are registered by the components that own the data; the server knows none of them.
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http'
import type { AddressInfo } from 'node:net'
import { isLoopback } from '../config/schema.ts'
import { bind, type SocketSource } from '../listeners/bind.ts'
import { listenerView, type ListenerView } from '../listeners/view.ts'
import type { Logger } from '../log/logger.ts'
import { AdminBindError } from './errors.ts'

export interface AdminReply {
  readonly status: number
  /** Objects are sent as JSON; strings as they are, with `contentType`. */
  readonly body: unknown
  readonly contentType?: string
}

export type AdminHandler = (req: IncomingMessage, url: URL) => AdminReply | Promise<AdminReply>

export interface AdminServerOptions {
  readonly address: string
  readonly port: number
  readonly allowRemote: boolean
  readonly log: Logger
}

export class AdminServer {
  readonly #opts: AdminServerOptions
  readonly #routes = new Map<string, Map<string, AdminHandler>>()
  readonly #server: Server
  readonly #onClose: (() => void)[] = []

  constructor(opts: AdminServerOptions) {
    this.#opts = opts
    this.#server = createServer((req, res) => {
      this.#handle(req, res).catch((err: unknown) => {
        // Last resort: an admin request must never take the daemon down.
        this.#opts.log.error({ err }, 'admin request failed')
        if (!res.headersSent) res.writeHead(500, { 'content-type': 'application/json' })
        res.end()
      })
    })
  }

  /** Registers `handler` for METHOD path. A path registered twice is a programming error. */
  route(method: 'GET' | 'POST', path: string, handler: AdminHandler): void {
    let byMethod = this.#routes.get(path)
    if (!byMethod) this.#routes.set(path, (byMethod = new Map()))
    if (byMethod.has(method)) throw new Error(`admin route ${method} ${path} registered twice`)
    byMethod.set(method, handler)
  }

  async listen(from?: SocketSource): Promise<AddressInfo> {
    const { address, port, allowRemote } = this.#opts
    // Checked here as well as in config validation: the listener must be safe on its own.
    if (!allowRemote && !isLoopback(address)) {
      throw new AdminBindError(`refusing to bind the admin port to ${address}: it has no authentication; bind to loopback or set admin.allowRemote: true`)
    }
    try {
      return await bind(this.#server, address, port, from)
    } catch (err) {
      throw new AdminBindError(`cannot bind the admin port to ${address}:${port}: ${(err as NodeJS.ErrnoException).code ?? (err as Error).message}`, { cause: err })
    }
  }

  /** Runs `stop` when the admin port closes: background work of an endpoint (a sampling timer) ends with it. */
  onClose(stop: () => void): void {
    this.#onClose.push(stop)
  }

  /** For /stats: the admin listener's address and open connections. */
  view(): Promise<ListenerView> {
    return listenerView('admin', [this.#server])
  }

  /** Stops accepting, lets in-flight requests finish, then resolves. */
  close(): Promise<void> {
    this.#stopBackground()
    return new Promise((resolve) => {
      if (!this.#server.listening) return resolve()
      this.#server.close(() => resolve())
      this.#server.closeIdleConnections()
    })
  }

  destroy(): void {
    this.#stopBackground()
    this.#server.closeAllConnections()
    this.#server.close()
  }

  #stopBackground(): void {
    for (const stop of this.#onClose.splice(0)) stop()
  }

  async #handle(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let url: URL | undefined
    try {
      // Only origin-form targets ("/path?query"); "//x" would otherwise parse as a host.
      if ((req.url ?? '').startsWith('/') && !(req.url ?? '').startsWith('//')) url = new URL(req.url!, 'http://admin')
    } catch { /* answered below */ }
    const byMethod = url ? this.#routes.get(url.pathname) : undefined
    let reply: AdminReply
    if (!url) {
      reply = { status: 400, body: { error: 'bad request target; expected a path such as /ready' } }
    } else if (req.method !== 'GET' && req.method !== 'HEAD' && req.headers.origin !== undefined) {
      // A web page can POST to 127.0.0.1 without asking (a "simple" request), and the admin
      // port has no authentication: requests that change something must not come from one.
      reply = { status: 403, body: { error: `${req.method} with an Origin header (${req.headers.origin}) refused: the admin port takes changes only from local tools such as curl, not from web pages`, header: 'origin' } }
    } else if (!byMethod) {
      reply = { status: 404, body: { error: `no admin endpoint ${url.pathname}`, endpoints: [...this.#routes.keys()].sort() } }
    } else {
      const handler = byMethod.get(req.method ?? 'GET')
      if (!handler) {
        res.setHeader('allow', [...byMethod.keys()].join(', '))
        reply = { status: 405, body: { error: `${req.method} not allowed on ${url.pathname}`, allow: [...byMethod.keys()] } }
      } else {
        try {
          reply = await handler(req, url)
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
