// The upstream side of the http-clients benchmark, on loopback: a node:http origin (`/` answers
// 1 KiB; `/slow` sends headers and 1 KiB at once, then 16 bytes every 100 ms for at most 30 s)
// and an h2c CONNECT server that pipes each CONNECT stream to the address in :authority, as a
// destination node's :15008 does without the mTLS. Both count what is open now, so a leak
// test can read how many upstream connections and tunnels a client left behind.
import http from 'node:http'
import http2 from 'node:http2'
import { connect, type AddressInfo } from 'node:net'
import { once } from 'node:events'
import { STREAM_WINDOW } from '../../daemon/tunnel/settings.ts'

export interface Origin {
  readonly port: number
  readonly tunnelPort: number
  /** TCP connections open at the origin, whoever made them. */
  readonly sockets: () => number
  /** CONNECT streams open at the tunnel server. */
  readonly streams: () => number
  readonly close: () => Promise<void>
}

const BODY = Buffer.alloc(1024, 'x')
const SLOW_MS = 30_000

export async function startOrigin(): Promise<Origin> {
  let sockets = 0
  let streams = 0
  const origin = http.createServer({ keepAliveTimeout: 60_000 }, (req, res) => {
    req.resume()
    if (req.url !== '/slow') {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.length })
      return void res.end(BODY)
    }
    res.writeHead(200, { 'content-type': 'application/octet-stream' })
    res.write(BODY)
    const started = Date.now()
    const tick = setInterval(() => {
      if (Date.now() - started >= SLOW_MS) res.end()
      else res.write(BODY.subarray(0, 16))
    }, 100)
    res.once('close', () => clearInterval(tick))
  })
  origin.on('connection', (s) => {
    sockets++
    s.once('close', () => sockets--)
  })
  // No per-session stream cap here: a client that leaks tunnels must show it in the count,
  // not stall behind the cap (the daemon caps at 100 and pools sessions). The RST_STREAM rate
  // limit is Node's default, as on the daemon's HBONE server (burst 1000, then 33/s): past it
  // nghttp2 ends the whole session with INTERNAL_ERROR.
  const tunnel = http2.createServer({ settings: { initialWindowSize: STREAM_WINDOW, maxConcurrentStreams: 100_000 } })
  tunnel.on('stream', (stream, headers) => {
    streams++
    stream.once('close', () => streams--)
    const authority = String(headers[':authority'] ?? '')
    const colon = authority.lastIndexOf(':')
    if (headers[':method'] !== 'CONNECT' || colon < 0) {
      stream.respond({ ':status': 400 }, { endStream: true })
      return
    }
    const sock = connect(Number(authority.slice(colon + 1)), authority.slice(0, colon).replace(/^\[|\]$/g, ''))
    sock.setNoDelay(true)
    sock.once('connect', () => {
      if (stream.destroyed) return void sock.destroy()
      stream.respond({ ':status': 200 })
      sock.pipe(stream)
      stream.pipe(sock)
    })
    sock.on('error', () => { if (!stream.destroyed) stream.close(http2.constants.NGHTTP2_CONNECT_ERROR) })
    sock.once('close', () => stream.destroy())
    stream.on('error', () => sock.destroy())
    stream.once('close', () => sock.destroy())
  })
  origin.listen(0, '127.0.0.1')
  tunnel.listen(0, '127.0.0.1')
  await Promise.all([once(origin, 'listening'), once(tunnel, 'listening')])
  return {
    port: (origin.address() as AddressInfo).port,
    tunnelPort: (tunnel.address() as AddressInfo).port,
    sockets: () => sockets,
    streams: () => streams,
    async close() {
      origin.closeAllConnections()
      await Promise.all([new Promise((r) => origin.close(r)), new Promise((r) => tunnel.close(r))])
    },
  }
}
