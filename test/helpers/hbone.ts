// An HBONE server (daemon/tunnel/server.ts) on loopback with a real echo workload, certificates
// from a real node CA and a compiled policy: t/echo (two ports, one with nothing listening)
// that only one source identity may reach. The client side is either hostmesh's own pool or a
// raw HTTP/2 session holding a valid workload certificate, as a hostile peer would.
import { inboundHttp } from './l7.ts'
import http2, { type ClientHttp2Session } from 'node:http2'
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { connect as tlsConnect, type TLSSocket } from 'node:tls'
import pino from 'pino'
import { Registry } from 'prom-client'
import type { Test } from 'tap'
import { CertManager } from '../../certs/manager.ts'
import { clientTlsOptions, PeerVerifier } from '../../certs/tls.ts'
import { tcpMetrics } from '../../daemon/metrics/istio-tcp.ts'
import { nodesByIdentity } from '../../daemon/run/placement.ts'
import { ConnectionTelemetry } from '../../daemon/telemetry/connection.ts'
import { DEFAULT_HBONE_LIMITS, type HboneLimits } from '../../daemon/tunnel/admission.ts'
import { HboneClientPool } from '../../daemon/tunnel/client-pool.ts'
import { HboneServer } from '../../daemon/tunnel/server.ts'
import { loadPolicy } from '../../policy/pipeline.ts'
import type { Snapshot } from '../../policy/snapshot.ts'
import { logSink } from './log-sink.ts'
import { nodeCertDir } from './pki.ts'
import { freePort } from './ports.ts'

const V = 'apiVersion: hostmesh.io/v1alpha1\n'
export const ID = (sa: string): string => `spiffe://cluster.local/ns/t/sa/${sa}`

function policy(echoPort: number, downPort: number, allow: string): string {
  return [
    `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n`,
    `${V}kind: Workload\nmetadata: {name: echo, namespace: t, labels: {app: echo}}\nspec: {node: node-a, serviceAccount: echo, match: {uid: 5001}, addresses: [127.0.0.1], ports: [{port: ${echoPort}}, {port: ${downPort}}]}\n`,
    `${V}kind: Workload\nmetadata: {name: client, namespace: t}\nspec: {node: node-a, serviceAccount: client, match: {uid: 5002}}\n`,
    `${V}kind: Workload\nmetadata: {name: intruder, namespace: t}\nspec: {node: node-a, serviceAccount: intruder, match: {uid: 5003}}\n`,
    `${V}kind: AuthorizationPolicy\nmetadata: {name: echo, namespace: t}\nspec: {selector: {matchLabels: {app: echo}}, action: ALLOW, rules: [{from: [{source: {principals: ["cluster.local/ns/t/sa/${allow}"]}}]}]}\n`,
  ].join('---\n')
}

export interface HboneSetup {
  readonly port: number
  /** The node CA dir the server's certificates come from (to mint a peer's own). */
  readonly certDir: string
  readonly echoPort: number
  readonly downPort: number
  readonly server: HboneServer
  readonly pool: HboneClientPool
  readonly certs: CertManager
  readonly verifier: PeerVerifier
  readonly registry: Registry
  /** Every connection the echo workload accepted. */
  readonly workloadSockets: Socket[]
  /** The server's log lines (info and up). */
  readonly logs: () => Array<Record<string, unknown>>
  /** A tunnel through hostmesh's own client pool, as `source`. */
  open(source: string, wlPort?: number, address?: string): ReturnType<HboneClientPool['open']>
  /** A raw HTTP/2 session holding `source`'s certificate, and its TLS socket. */
  raw(source: string, settings?: http2.Settings): Promise<{ session: ClientHttp2Session; socket: TLSSocket }>
  setSnapshot(allow: string): Promise<Snapshot>
  /** The value of one series of a metric, 0 if absent. */
  metric(name: string, labels?: Record<string, string>): Promise<number>
}

export interface HboneSetupOptions {
  readonly limits?: Partial<HboneLimits>
  /** What the workload does with each connection (default: echo). */
  readonly workload?: (s: Socket) => void
}

export async function hboneSetup(t: Test, opts: HboneSetupOptions = {}): Promise<HboneSetup> {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-hbone-'))
  mkdirSync(join(dir, 'policy.d'))
  const workloadSockets: Socket[] = []
  const serve = opts.workload ?? ((s: Socket) => s.pipe(s))
  const echo: Server = createServer({ allowHalfOpen: true }, (s) => { workloadSockets.push(s); s.on('error', () => undefined); serve(s) })
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
  t.teardown(() => { echo.close() })
  const echoPort = (echo.address() as AddressInfo).port
  const downPort = await freePort()
  const compile = async (allow: string): Promise<Snapshot> => {
    writeFileSync(join(dir, 'policy.d', 'p.yaml'), policy(echoPort, downPort, allow))
    const r = await loadPolicy(join(dir, 'policy.d'), { generation: 1, trustDomain: 'cluster.local', localNode: 'node-a' })
    if (!r.ok) throw new Error(r.problems.map((p) => p.message).join('; '))
    return r.snapshot
  }
  let snapshot = await compile('client')
  const sink = logSink()
  const log = pino({ level: 'info' }, sink.dest)
  const certDir = await nodeCertDir(dir, 'node-a')
  const certs = new CertManager({ mode: 'ca', certDir, trustDomain: 'cluster.local', node: 'node-a', log: pino({ level: 'silent' }), watch: false, resyncMs: 0 })
  t.teardown(() => certs.close())
  await certs.start([ID('echo'), ID('client'), ID('intruder')])
  const registry = new Registry()
  const verifier = new PeerVerifier(() => ({ ...certs.trust(), nodesOf: (id) => nodesByIdentity(snapshot).get(id) }), log, registry)
  const telemetry = new ConnectionTelemetry(tcpMetrics(registry), log)
  const http = inboundHttp(() => snapshot, log, registry, telemetry)
  t.teardown(() => http.destroy())
  const server = new HboneServer({
    host: '127.0.0.1', port: 0, certs, verifier, snapshot: () => snapshot, log,
    telemetry, registry, limits: { ...DEFAULT_HBONE_LIMITS, ...opts.limits }, http,
  })
  const { port } = await server.listen()
  t.teardown(() => { server.destroy(); return server.close() })
  const pool = new HboneClientPool(certs, verifier)
  t.teardown(() => pool.destroy())
  const sessions: ClientHttp2Session[] = []
  t.teardown(() => { for (const s of sessions) s.destroy() })
  return {
    port, certDir, echoPort, downPort, server, pool, certs, verifier, registry, workloadSockets, logs: sink.lines,
    open: (source, wlPort = echoPort, address = '127.0.0.1') =>
      pool.open({ source: ID(source), destination: ID('echo'), node: { address: '127.0.0.1', port }, address, port: wlPort, sourceWorkload: `t/${source}` }),
    async raw(source, settings) {
      const context = await certs.ensure(ID(source))
      const socket = tlsConnect(clientTlsOptions({ host: '127.0.0.1', port, context, expected: ID('echo') }))
      socket.on('error', () => undefined)
      await new Promise<void>((resolve, reject) => { socket.once('secureConnect', resolve); socket.once('error', reject) })
      const session = http2.connect(`https://127.0.0.1:${port}`, { createConnection: () => socket, ...(settings ? { settings } : {}) })
      session.on('error', () => undefined)
      sessions.push(session)
      return { session, socket }
    },
    setSnapshot: async (allow) => { snapshot = await compile(allow); return snapshot },
    async metric(name, labels = {}) {
      const metric = registry.getSingleMetric(name)
      if (!metric) return 0
      let sum = 0
      for (const { value, labels: l } of (await metric.get()).values) {
        if (Object.entries(labels).every(([k, v]) => String(l[k]) === v)) sum += value
      }
      return sum
    },
  }
}
