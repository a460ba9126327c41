// Bench workload: `sink` ports read everything and answer the byte count when the client
// half-closes; `byte` ports send one byte and close. Usage: mesh-server.ts sink:9000 byte:9002 ...
import { createServer } from 'node:net'

let ready = 0
const specs = process.argv.slice(2)
for (const spec of specs) {
  const [mode, port] = spec.split(':') as [string, string]
  const server = createServer({ allowHalfOpen: true }, (s) => {
    s.on('error', () => undefined)
    if (mode === 'byte') return void s.end('x')
    let n = 0
    s.on('data', (c: Buffer) => { n += c.length })
    s.on('end', () => s.end(`${n}\n`))
  })
  server.listen({ host: '::', port: Number(port), ipv6Only: false }, () => { if (++ready === specs.length) process.stdout.write('bench server ready\n') })
}
process.on('SIGTERM', () => process.exit(0))
