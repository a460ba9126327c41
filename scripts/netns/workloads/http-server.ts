// An HTTP workload for the end-to-end tests: answers every request with what it received
// (method, target, headers, HTTP version, peer address) as JSON, and prints one line per
// request on stdout ("REQ <method> <target>") so a test can see exactly what reached it.
// One port speaks HTTP/1.1 and HTTP/2 with prior knowledge (told apart by the preface).
//   node http-server.ts NAME PORT
//   .../status/<code>   answers that status (anywhere in the path)
//   .../stream/<n>      n chunks of 1 KB, 20 ms apart (chunked)
//   .../slow/<ms>       answers after ms
//   WebSocket upgrade   echoes text messages back, prefixed with NAME
import { createHash } from 'node:crypto'
import http, { type IncomingMessage, type ServerResponse } from 'node:http'
import http2 from 'node:http2'
import { createServer } from 'node:net'
import { Duplex } from 'node:stream'

const [name, port] = [process.argv[2]!, Number(process.argv[3])]

/** What both HTTP versions' responses offer, for this server's few calls. */
interface Reply {
  writeHead(status: number, headers: Record<string, string>): unknown
  write(chunk: Buffer): unknown
  end(body?: string): unknown
}

function handle(req: IncomingMessage | http2.Http2ServerRequest, response: ServerResponse | http2.Http2ServerResponse): void {
  const res = response as unknown as Reply
  process.stdout.write(`REQ ${req.method} ${req.url}\n`)
  let body = 0
  req.on('data', (c: Buffer) => { body += c.length })
  req.on('end', () => {
    const url = req.url ?? '/'
    const status = /\/status\/(\d{3})/.exec(url)
    const stream = /\/stream\/(\d+)/.exec(url)
    const slow = /\/slow\/(\d+)/.exec(url)
    const info = JSON.stringify({ name, method: req.method, url, httpVersion: req.httpVersion, headers: req.headers, remote: req.socket.remoteAddress?.replace(/^::ffff:/, ''), body })
    if (stream) {
      res.writeHead(200, { 'content-type': 'application/octet-stream', 'x-server': name })
      let left = Number(stream[1])
      const tick = (): void => {
        if (left-- <= 0) return void res.end()
        res.write(Buffer.alloc(1024, 97))
        setTimeout(tick, 20)
      }
      return tick()
    }
    const send = (): void => {
      res.writeHead(status ? Number(status[1]) : 200, { 'content-type': 'application/json', 'x-server': name })
      res.end(info)
    }
    if (slow) setTimeout(send, Number(slow[1]))
    else send()
  })
}

const h1 = http.createServer(handle)
h1.on('upgrade', (req: IncomingMessage, socket: Duplex) => websocket(req, socket))
const h2 = http2.createServer(handle)
const server = createServer((socket) => {
  socket.on('error', () => undefined)
  socket.once('data', (first: Buffer) => {
    socket.pause()
    if (first.toString('latin1', 0, 3) === 'PRI') {
      // http2's server reads the socket's handle directly, past unshift(): replay the preface.
      const io = new Duplex({
        read() { socket.resume() },
        write(c: Buffer, _e, cb) { socket.write(c, cb) },
        final(cb) { socket.end(); cb() },
        destroy(err, cb) { socket.destroy(err ?? undefined); cb(err) },
      })
      io.push(first)
      socket.on('data', (c: Buffer) => { if (!io.push(c)) socket.pause() })
      socket.once('end', () => io.push(null))
      socket.once('close', () => io.destroy())
      h2.emit('connection', io)
      return
    }
    socket.unshift(first)
    h1.emit('connection', socket)
    socket.resume()
  })
})
server.listen({ host: '::', port, ipv6Only: false }, () => process.stdout.write(`listening ${port}\n`))
process.on('SIGTERM', () => process.exit(0))

/** RFC 6455, just enough for text messages of up to 64 KiB: the handshake, then echo. */
function websocket(req: IncomingMessage, socket: Duplex): void {
  process.stdout.write(`REQ UPGRADE ${req.url}\n`)
  const key = req.headers['sec-websocket-key']
  if (typeof key !== 'string') return void socket.destroy()
  const accept = createHash('sha1').update(`${key}258EAFA5-E914-47DA-95CA-C5AB0DC85B11`).digest('base64')
  socket.write(`HTTP/1.1 101 Switching Protocols\r\nupgrade: websocket\r\nconnection: Upgrade\r\nsec-websocket-accept: ${accept}\r\nx-server: ${name}\r\n\r\n`)
  let buf = Buffer.alloc(0)
  socket.on('data', (c: Buffer) => {
    buf = Buffer.concat([buf, c])
    for (;;) {
      if (buf.length < 2) return
      const op = buf[0]! & 0x0f
      let len = buf[1]! & 0x7f
      let off = 2
      if (len === 126) { if (buf.length < 4) return; len = buf.readUInt16BE(2); off = 4 }
      const masked = (buf[1]! & 0x80) !== 0
      const need = off + (masked ? 4 : 0) + len
      if (buf.length < need) return
      const mask = masked ? buf.subarray(off, off + 4) : undefined
      const payload = Buffer.from(buf.subarray(need - len, need))
      if (mask) for (let i = 0; i < payload.length; i++) payload[i]! ^= mask[i % 4]!
      buf = buf.subarray(need)
      if (op === 8) return void socket.end(Buffer.from([0x88, 0]))
      if (op !== 1) continue
      const out = Buffer.from(`${name}: ${payload.toString()}`)
      const head = out.length < 126 ? Buffer.from([0x81, out.length]) : Buffer.from([0x81, 126, out.length >> 8, out.length & 0xff])
      socket.write(Buffer.concat([head, out]))
    }
  })
  socket.on('error', () => undefined)
}
