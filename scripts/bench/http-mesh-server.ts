// The http-mesh bench's workload when nginx is not installed: 1 KiB to every request, keep-alive
// kept open. Usage: http-mesh-server.ts PORT...
import http from 'node:http'

const BODY = Buffer.alloc(1024, 'x')
const ports = process.argv.slice(2).map(Number)
let ready = 0
for (const port of ports) {
  const server = http.createServer({ keepAliveTimeout: 300_000 }, (req, res) => {
    req.resume()
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': BODY.length })
    res.end(BODY)
  })
  server.listen({ host: '0.0.0.0', port }, () => { if (++ready === ports.length) process.stdout.write('bench server ready\n') })
}
process.on('SIGTERM', () => process.exit(0))
