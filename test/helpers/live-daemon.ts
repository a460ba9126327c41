// A real daemon in the test process with real traffic through it: node-a runs an echo
// workload (t/echo, behind Service t/echo:80) that only t/client may reach. The test side is
// another workload of node-a opening HBONE tunnels to the daemon's :15008 with its own
// certificates from the same node CA, as a peer hostmesh would: connections are verified,
// authorized, spliced, counted and logged by the daemon as in production.
import { mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { createServer, type AddressInfo } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import type { ClientHttp2Stream } from 'node:http2'
import pino from 'pino'
import { Registry } from 'prom-client'
import type { Test } from 'tap'
import { CertManager } from '../../certs/manager.ts'
import { PeerVerifier } from '../../certs/tls.ts'
import { nodesByIdentity } from '../../daemon/run/placement.ts'
import { Daemon } from '../../daemon/run/lifecycle.ts'
import { HboneClientPool } from '../../daemon/tunnel/client-pool.ts'
import { logSink } from './log-sink.ts'
import { nodeCertDir } from './pki.ts'
import { daemonPorts } from './ports.ts'

const V = 'apiVersion: hostmesh.io/v1alpha1\n'
export const ID = (sa: string): string => `spiffe://cluster.local/ns/t/sa/${sa}`

export function livePolicy(echoPort: number): string {
  return [
    `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n`,
    `${V}kind: Workload\nmetadata: {name: echo, namespace: t, labels: {app: echo}}\nspec: {node: node-a, serviceAccount: echo, match: {uid: 5001}, addresses: [127.0.0.1], ports: [{port: ${echoPort}}]}\n`,
    `${V}kind: Workload\nmetadata: {name: client, namespace: t}\nspec: {node: node-a, serviceAccount: client, match: {uid: 5002}}\n`,
    `${V}kind: Workload\nmetadata: {name: intruder, namespace: t}\nspec: {node: node-a, serviceAccount: intruder, match: {uid: 5003}}\n`,
    `${V}kind: Service\nmetadata: {name: echo, namespace: t}\nspec: {addresses: [10.96.0.99], ports: [{port: 80, targetPort: ${echoPort}}], selector: {app: echo}}\n`,
    `${V}kind: AuthorizationPolicy\nmetadata: {name: echo, namespace: t}\nspec: {selector: {matchLabels: {app: echo}}, action: ALLOW, rules: [{from: [{source: {principals: ["cluster.local/ns/t/sa/client"]}}]}]}\n`,
  ].join('---\n')
}

export interface LiveDaemon {
  readonly daemon: Daemon
  /** http://127.0.0.1:<admin port> */
  readonly base: string
  /** The admin socket's path (the only way to POST /logging). */
  readonly socket: string
  readonly policyDir: string
  readonly configPath: string
  readonly logs: ReturnType<typeof logSink>
  /** Opens a tunnel to t/echo as `source` (rejects with the daemon's 401 for t/intruder). */
  open(source: string, over?: HboneClientPool): Promise<ClientHttp2Stream>
  /** One connection as `source`: sends `bytes`, half-closes, resolves with what came back. */
  echo(source: string, bytes: number, over?: HboneClientPool): Promise<number>
  /** Another HBONE client with its own session (its own TCP connection to :15008); closed at teardown. */
  newPool(): HboneClientPool
  getJson<T>(path: string, init?: RequestInit): Promise<{ status: number; body: T }>
}

/** `config`: more node config lines (YAML), e.g. `workers: 2\n`; the default is `workers: 1`. */
export async function liveDaemon(t: Test, config = 'workers: 1\n'): Promise<LiveDaemon> {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-live-'))
  const policyDir = join(dir, 'policy.d')
  mkdirSync(policyDir)
  const echo = createServer({ allowHalfOpen: true }, (s) => { s.on('error', () => undefined); s.pipe(s) })
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
  t.teardown(() => { echo.close() })
  const echoPort = (echo.address() as AddressInfo).port
  writeFileSync(join(policyDir, 'live.yaml'), livePolicy(echoPort))
  const certDir = await nodeCertDir(dir, 'node-a')
  const ports = await daemonPorts()
  const configPath = join(dir, 'hostmesh.yaml')
  writeFileSync(configPath, `node: {name: node-a, addresses: [127.0.0.1]}\n${ports.yaml}policyDir: ${policyDir}\ncertDir: ${certDir}\ndrainSeconds: 1\n${config}`)
  const logs = logSink()
  const daemon = await Daemon.start({ configPath, logDest: logs.dest })
  t.teardown(() => daemon.stop('test'))

  // The test's own workload side: certificates from the same node CA, the daemon's policy for node binding.
  const log = pino({ level: 'silent' })
  const certs = new CertManager({ mode: 'ca', certDir, trustDomain: 'cluster.local', node: 'node-a', log, watch: false, resyncMs: 0 })
  t.teardown(() => certs.close())
  await certs.start([ID('client'), ID('intruder')])
  const verifier = new PeerVerifier(() => ({ ...certs.trust(), nodesOf: (id) => nodesByIdentity(daemon.policy.current).get(id) }), log, new Registry())
  const newPool = (): HboneClientPool => {
    const p = new HboneClientPool(certs, verifier)
    t.teardown(() => p.destroy())
    return p
  }
  const pool = newPool()
  const base = `http://127.0.0.1:${ports.admin}`

  const open = (source: string, over = pool): Promise<ClientHttp2Stream> => over.open({
    source: ID(source), destination: ID('echo'), node: { address: '127.0.0.1', port: ports.hbone },
    address: '127.0.0.1', port: echoPort, sourceWorkload: `t/${source}`, destinationService: 'echo.t',
  })
  return {
    daemon, base, socket: ports.socket, policyDir, configPath, logs, open, newPool,
    async echo(source, bytes, over) {
      const stream = await open(source, over)
      let back = 0
      stream.on('data', (c: Buffer) => { back += c.length })
      const ended = new Promise<void>((r) => stream.on('close', r))
      stream.end(Buffer.alloc(bytes, 1))
      await ended
      return back
    },
    async getJson<T>(path: string, init?: RequestInit) {
      const res = await fetch(`${base}${path}`, init)
      return { status: res.status, body: await res.json() as T }
    },
  }
}
