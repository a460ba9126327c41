// One candidate of the http-clients benchmark: a node:http proxy front that forwards every
// request through one upstream client to the origin, either over TCP or inside HTTP/2 CONNECT
// streams (one per upstream connection, on one h2c session to the tunnel server), which is how
// hostmesh carries HTTP/1.1 between hosts. Prints `ready <port>`; answers any IPC message
// with its CPU usage; SIGTERM ends it.
// Usage: http-clients-proxy.ts <undici|node-http|http-proxy-3> <tcp|connect> <originPort> <tunnelPort> [naive]
// `naive` leaves out the one thing that stops a leak on client abort: ending the upstream
// request when the downstream response closes before it finished.
import http, { type IncomingHttpHeaders, type OutgoingHttpHeaders, type RequestListener, type ServerResponse } from 'node:http'
import http2, { type ClientHttp2Session } from 'node:http2'
import type { Socket, AddressInfo } from 'node:net'
import type { Duplex } from 'node:stream'
import { Pool, type Dispatcher } from 'undici'
import { createProxyServer } from 'http-proxy-3'
import { CONNECTION_WINDOW, H2_SETTINGS } from '../../daemon/tunnel/settings.ts'

type Opened = (err: Error | null, stream?: Duplex) => void
type Opener = (authority: string, cb: Opened) => void

const [client, transport, originPort, tunnelPort, naiveArg] = process.argv.slice(2) as [string, string, string, string, string | undefined]
const naive = naiveArg === 'naive'
const ORIGIN = { host: '127.0.0.1', port: Number(originPort) }

/** CONNECT streams on one h2c session, reopened if it goes away; resolves once the tunnel answered 200. */
function tunnelOpener(port: number): Opener {
  let session: ClientHttp2Session | undefined
  const live = (): ClientHttp2Session => {
    if (session && !session.closed && !session.destroyed) return session
    const s = http2.connect(`http://127.0.0.1:${port}`, { settings: H2_SETTINGS })
    s.on('error', () => undefined)
    s.once('connect', () => s.setLocalWindowSize(CONNECTION_WINDOW))
    s.once('close', () => { if (session === s) session = undefined })
    return (session = s)
  }
  return (authority, cb) => {
    let done = false
    const finish = (err: Error | null, stream?: Duplex): void => { if (!done) { done = true; cb(err, stream) } }
    const stream = live().request({ ':method': 'CONNECT', ':authority': authority })
    stream.once('response', (h) => {
      if (h[':status'] === 200) return finish(null, stream)
      stream.destroy()
      finish(new Error(`tunnel answered ${h[':status']}`))
    })
    stream.once('error', (err) => finish(err))
    stream.once('close', () => finish(new Error('tunnel closed before its answer')))
  }
}

/**
 * http.Agent calls setKeepAlive(), unref() and ref() on the connections it pools, which a
 * Duplex such as an Http2Stream does not have (TypeError on the first keep-alive). A tunnel
 * needs no TCP keepalive (the HBONE session sends PINGs) and has no handle to ref, so they are
 * no-ops. Overriding keepSocketAlive/reuseSocket instead would drop what the defaults also do
 * (the server's keep-alive hint, removing the free-socket 'error' listener: without that, one
 * listener piles up per reuse).
 */
function asAgentSocket(stream: Duplex): Duplex {
  return Object.assign(stream, { setKeepAlive: () => stream, ref: () => stream, unref: () => stream })
}

/** node:http's Agent over CONNECT streams: its pool of keep-alive "sockets" are tunnels. */
class TunnelAgent extends http.Agent {
  readonly #open: Opener
  constructor(open: Opener) {
    super({ keepAlive: true, keepAliveMsecs: 60_000 })
    this.#open = open
  }
  override createConnection(options: http.ClientRequestArgs, cb?: (err: Error | null, stream: Duplex) => void): undefined {
    this.#open(`${options.host}:${options.port}`, (err, stream) => {
      if (stream) cb?.(null, asAgentSocket(stream))
      else cb?.(err ?? new Error('no tunnel'), undefined as never)
    })
    return undefined
  }
}

const HOP = new Set(['connection', 'keep-alive', 'proxy-connection', 'transfer-encoding', 'te', 'trailer', 'upgrade', 'proxy-authenticate', 'proxy-authorization'])

/** The end-to-end headers (RFC 9110 §7.6.1): hop-by-hop ones and those `connection` names are dropped. */
function endToEnd(h: IncomingHttpHeaders): OutgoingHttpHeaders {
  const named = String(h.connection ?? '').toLowerCase().split(',').map((s) => s.trim())
  const out: OutgoingHttpHeaders = {}
  for (const [k, v] of Object.entries(h)) if (v !== undefined && !HOP.has(k) && !named.includes(k)) out[k] = v
  return out
}

function fail(res: ServerResponse): void {
  if (res.headersSent) res.destroy()
  else res.writeHead(502, { 'content-length': 0 }).end()
}

function viaNodeHttp(agent: http.Agent): RequestListener {
  return (req, res) => {
    const up = http.request({ agent, ...ORIGIN, method: req.method, path: req.url, headers: endToEnd(req.headers) }, (ur) => {
      res.writeHead(ur.statusCode ?? 502, endToEnd(ur.headers))
      ur.pipe(res)
    })
    up.on('error', () => fail(res))
    // pipe() only unpipes when `res` closes: the upstream response then sits paused and its
    // connection stays open, mid-response, for as long as the origin keeps it.
    if (!naive) res.once('close', () => { if (!res.writableFinished) up.destroy() })
    req.pipe(up)
  }
}

function viaUndici(pool: Dispatcher): RequestListener {
  return (req, res) => {
    let controller: Dispatcher.DispatchController | undefined
    let closed = false
    const body = req.method === 'GET' || req.method === 'HEAD' ? null : req
    if (!naive) {
      res.once('close', () => {
        if (res.writableFinished) return
        closed = true
        controller?.abort(new Error('downstream closed'))
      })
    }
    pool.dispatch({ method: (req.method ?? 'GET') as Dispatcher.HttpMethod, path: req.url ?? '/', headers: endToEnd(req.headers) as Record<string, string | string[]>, body }, {
      onRequestStart(c) {
        controller = c
        if (closed) c.abort(new Error('downstream closed'))
      },
      onResponseStart(_c, status, headers) { res.writeHead(status, endToEnd(headers)) },
      onResponseData(c, chunk) {
        if (!res.write(chunk)) {
          c.pause()
          res.once('drain', () => c.resume())
        }
      },
      onResponseEnd() { res.end() },
      onResponseError() { fail(res) },
    })
  }
}

function viaHttpProxy3(agent: http.Agent): RequestListener {
  const proxy = createProxyServer({ target: `http://${ORIGIN.host}:${ORIGIN.port}`, agent })
  proxy.on('error', (_err, _req, res) => { if (res && 'writeHead' in res) fail(res) })
  return (req, res) => proxy.web(req, res)
}

const open = transport === 'connect' ? tunnelOpener(Number(tunnelPort)) : undefined
const agent = open ? new TunnelAgent(open) : new http.Agent({ keepAlive: true, keepAliveMsecs: 60_000 })
let handler: RequestListener
if (client === 'undici') {
  // undici's connector types promise a net.Socket; it only uses the Duplex API of what it gets.
  const connect = open && ((opts: { hostname: string; port: string }, cb: (...a: [null, Socket] | [Error, null]) => void): void =>
    open(`${opts.hostname}:${opts.port}`, (err, s) => (err ? cb(err, null) : cb(null, s as Socket))))
  handler = viaUndici(new Pool(`http://${ORIGIN.host}:${ORIGIN.port}`, { keepAliveTimeout: 60_000, ...(connect ? { connect } : {}) }))
} else if (client === 'node-http') handler = viaNodeHttp(agent)
else if (client === 'http-proxy-3') handler = viaHttpProxy3(agent)
else throw new Error(`unknown client ${client}`)

const server = http.createServer({ keepAliveTimeout: 60_000 }, handler)
server.listen(0, '127.0.0.1', () => process.stdout.write(`ready ${(server.address() as AddressInfo).port}\n`))
// The driver asks for CPU time over IPC before and after each load: µs of CPU per request is
// steadier than req/s when other work shares the cores.
process.on('message', () => process.send?.(process.cpuUsage()))
process.on('SIGTERM', () => process.exit(0))
