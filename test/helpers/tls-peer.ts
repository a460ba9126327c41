// A TLS peer in its own process, for handshake tests between processes. Reads a JSON spec
// (argv[2]) and prints one JSON line per event on stdout.
//   role "server": hostmesh's server side (CertManager + serverTlsOptions + PeerVerifier);
//                  each verified connection gets "hello <peer id> <our serial>\n", then echo.
//   role "raw-server": a hostile or misconfigured server presenting one fixed certificate for
//                  any server name and verifying nothing, to test the client side.
import { readFileSync } from 'node:fs'
import { createServer as createNetServer } from 'node:net'
import { createServer } from 'node:tls'
import pino from 'pino'
import { Registry } from 'prom-client'
import { CertManager, type CertMode } from '../../certs/manager.ts'
import { acceptVerified, PeerVerifier } from '../../certs/tls.ts'
import { TlsPeerError } from '../../certs/errors.ts'

export interface ServerSpec {
  readonly role: 'server'
  readonly mode: CertMode
  readonly certDir: string
  readonly node: string
  readonly trustDomain: string
  readonly identities: readonly string[]
  /** identity → nodes hosting it (node binding); omit to skip the check (file mode). */
  readonly hosts?: Record<string, readonly string[]>
  readonly leafTtlMs?: number
}

export interface RawServerSpec {
  readonly role: 'raw-server'
  readonly cert: string
  readonly key: string
  readonly chain?: string
}

const say = (o: Record<string, unknown>): void => { process.stdout.write(`${JSON.stringify(o)}\n`) }
const spec = JSON.parse(readFileSync(process.argv[2]!, 'utf8')) as ServerSpec | RawServerSpec
const log = pino({ level: 'warn' }, pino.destination(2))

if (spec.role === 'raw-server') {
  const server = createServer({ cert: readFileSync(spec.cert, 'utf8') + (spec.chain ? readFileSync(spec.chain, 'utf8') : ''), key: readFileSync(spec.key), minVersion: 'TLSv1.3', ALPNProtocols: ['h2'] }, (s) => s.end('raw\n'))
  server.listen(0, '127.0.0.1', () => say({ event: 'listening', port: (server.address() as { port: number }).port }))
} else {
  const certs = new CertManager({ mode: spec.mode, certDir: spec.certDir, trustDomain: spec.trustDomain, node: spec.node, log, resyncMs: 0, ...(spec.leafTtlMs ? { leafTtlMs: spec.leafTtlMs } : {}) })
  certs.on('published', (identity, v) => say({ event: 'published', identity, serial: v.serial }))
  certs.on('reloaded', (reason, err) => say({ event: 'reloaded', reason, error: err?.message ?? null }))
  await certs.start(spec.identities)
  const hosts = spec.hosts ? new Map(Object.entries(spec.hosts).map(([id, nodes]) => [id, new Set(nodes)])) : undefined
  const verifier = new PeerVerifier(() => ({ ...certs.trust(), ...(hosts ? { nodesOf: (id: string) => hosts.get(id) } : {}) }), log, new Registry())
  const server = createNetServer((raw) => {
    acceptVerified(raw, certs, verifier).then(({ socket, identity, node }) => {
      say({ event: 'peer', ok: true, identity, node: node ?? null })
      socket.write(`hello ${identity} ${socket.getX509Certificate()?.serialNumber.toLowerCase()}\n`)
      socket.pipe(socket)
      socket.on('error', () => socket.destroy())
    }, (err: unknown) => {
      say(err instanceof TlsPeerError && !['handshake', 'unknown_server_name'].includes(err.reason)
        ? { event: 'peer', ok: false, reason: err.reason, message: err.message }
        : { event: 'handshake-failed', reason: (err as TlsPeerError).reason, message: (err as Error).message })
    })
  })
  server.listen(0, '127.0.0.1', () => say({ event: 'listening', port: (server.address() as { port: number }).port, states: certs.views().map((v) => v.state) }))
}
process.on('SIGTERM', () => process.exit(0))
