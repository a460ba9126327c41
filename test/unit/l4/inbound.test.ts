// The destination's per-connection path (daemon/l4/inbound.ts) with a stand-in entry: which
// stages run for which connection, what each refusal is reported as, and that the tunnel slot
// is released once whatever ends the connection. The workload is a real TCP echo server on
// loopback; the snapshot is compiled from policy text.
import { createServer, type AddressInfo, type Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import pino from 'pino'
import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import { inboundPath } from '../../../daemon/l4/inbound.ts'
import type { InboundEntry, InboundRefusal, KeptConnection } from '../../../daemon/l4/inbound-connection.ts'
import type { InboundHttp } from '../../../daemon/l7/inbound.ts'
import type { InboundConn } from '../../../daemon/l7/inbound-conn.ts'
import { tcpMetrics } from '../../../daemon/metrics/istio-tcp.ts'
import { ConnectionTelemetry } from '../../../daemon/telemetry/connection.ts'
import { hashFiles } from '../../../policy/load.ts'
import { buildSnapshot } from '../../../policy/pipeline.ts'
import type { Protocol, Snapshot } from '../../../policy/snapshot.ts'
import { until } from '../../helpers/admin.ts'
import { logSink } from '../../helpers/log-sink.ts'
import { freePort, tcpPair } from '../../helpers/ports.ts'

const V = 'apiVersion: hostmesh.io/v1alpha1\n'
const ID = (sa: string): string => `spiffe://cluster.local/ns/t/sa/${sa}`

function compile(ports: { echo: number; down: number; http: number }, opts: { allow: string; mode?: 'STRICT' | 'PERMISSIVE' }): Snapshot {
  const text = [
    `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n`,
    `${V}kind: Workload\nmetadata: {name: echo, namespace: t, labels: {app: echo}}\nspec: {node: node-a, serviceAccount: echo, match: {uid: 5001}, addresses: [127.0.0.1], mtls: {mode: ${opts.mode ?? 'PERMISSIVE'}}, ports: [{port: ${ports.echo}}, {port: ${ports.down}}, {port: ${ports.http}}]}\n`,
    `${V}kind: Service\nmetadata: {name: web, namespace: t}\nspec: {selector: {app: echo}, ports: [{port: 80, protocol: http, targetPort: ${ports.http}}]}\n`,
    `${V}kind: AuthorizationPolicy\nmetadata: {name: echo, namespace: t}\nspec: {selector: {matchLabels: {app: echo}}, action: ALLOW, rules: [{from: [{source: {principals: ["cluster.local/ns/t/sa/${opts.allow}"]}}]}]}\n`,
  ].join('---\n')
  const files = [{ path: 'p.yaml', text, sha256: 'x' }]
  const r = buildSnapshot({ dir: 'd', missing: false, files, hash: hashFiles(files), problems: [] }, { generation: 1, trustDomain: 'cluster.local', localNode: 'node-a' })
  if (!r.ok) throw new Error(r.problems.map((p) => p.message).join('; '))
  return r.snapshot
}

interface Setup {
  readonly ports: { echo: number; down: number; http: number }
  /** Connections the echo workload accepted. */
  readonly workload: Socket[]
  readonly served: { conn: InboundConn; protocol: Protocol }[]
  readonly logs: () => Array<Record<string, unknown>>
  readonly telemetry: ConnectionTelemetry
  snapshots: Snapshot[]
  run(entry: InboundEntry): void
}

async function setup(t: Test): Promise<Setup> {
  const workload: Socket[] = []
  const echo = createServer({ allowHalfOpen: true }, (s) => { workload.push(s); s.on('error', () => undefined); s.pipe(s) })
  await new Promise<void>((r) => echo.listen(0, '127.0.0.1', r))
  t.teardown(() => { for (const s of workload) s.destroy(); echo.close() })
  const ports = { echo: (echo.address() as AddressInfo).port, down: await freePort(), http: await freePort() }
  const sink = logSink()
  const log = pino({ level: 'info' }, sink.dest)
  const telemetry = new ConnectionTelemetry(tcpMetrics(new Registry()), log)
  const served: Setup['served'] = []
  const http = { serve: (_down: Duplex, conn: InboundConn, protocol: Protocol) => void served.push({ conn, protocol }) } as unknown as InboundHttp
  const s: Setup = {
    ports, workload, served, logs: sink.lines, telemetry,
    snapshots: [compile(ports, { allow: 'client' })],
    // Each call takes the next snapshot, the last one from then on: a policy swap between calls.
    run: inboundPath({ snapshot: () => s.snapshots.length > 1 ? s.snapshots.shift() : s.snapshots[0], http, connectTimeoutMs: 2000, log }),
  }
  return s
}

interface Stand {
  readonly entry: InboundEntry
  /** The client's end of the downstream connection. */
  readonly client: Socket
  readonly down: Socket
  readonly calls: string[]
  readonly refusals: InboundRefusal[]
  readonly kept: Set<KeptConnection>
  released: number
}

/** An entry as the HBONE server or the plaintext listener would make one, recording what the path asks of it. */
async function stand(t: Test, s: Setup, opts: { peer?: string; port: number; tunnel?: 'free' | 'full'; settle?: (st: Stand) => Promise<void> }): Promise<Stand> {
  const [client, down] = await tcpPair()
  client.on('error', () => undefined)
  down.on('error', () => undefined)
  t.teardown(() => { client.destroy(); down.destroy() })
  const st: Stand = {
    client, down, calls: [], refusals: [], kept: new Set(), released: 0,
    entry: {
      downstream: down,
      target: (snap) => {
        st.calls.push('target')
        const w = snap!.workloads.get('t/echo')!
        const record = s.telemetry.begin({ reporter: 'destination', listener: 'hbone', src: {}, dst: { workload: w }, security: 'mutual_tls' })
        return { snapshot: snap!, record, conn: { listener: 'hbone', workload: w, address: '127.0.0.1', port: opts.port, ...(opts.peer ? { peer: ID(opts.peer) } : {}), src: {} } }
      },
      ...(opts.tunnel ? {
        tunnel: () => {
          st.calls.push('tunnel')
          return opts.tunnel === 'full' ? undefined : () => { st.released++ }
        },
      } : {}),
      refuse: (why) => { st.calls.push(`refuse:${why.kind}`); st.refusals.push(why) },
      settle: async () => { st.calls.push('settle'); await opts.settle?.(st) },
      accept: () => { st.calls.push('accept') },
      keep: (c) => {
        st.calls.push('keep')
        st.kept.add(c)
        return () => { st.kept.delete(c) }
      },
    },
  }
  return st
}

const settled = (st: Stand): boolean => st.calls.some((c) => c.startsWith('refuse') || c === 'keep')

t.test('a tcp port, allowed: accepted once, spliced to the workload, kept until it ends, then released and recorded', async (t) => {
  const s = await setup(t)
  const st = await stand(t, s, { peer: 'client', port: s.ports.echo, tunnel: 'free' })
  s.run(st.entry)
  await until(() => settled(st), 'the path to finish')
  t.same(st.calls, ['target', 'tunnel', 'settle', 'accept', 'keep'], 'the stages in order, nothing refused')
  t.equal(s.workload.length, 1, 'the workload was dialled once')
  t.equal(st.kept.size, 1, 'kept for policy re-checks while open')
  const got: Buffer[] = []
  st.client.on('data', (c: Buffer) => got.push(c))
  st.client.write('ping')
  await until(() => Buffer.concat(got).toString() === 'ping', 'the echo to come back through the splice')
  st.client.end()
  await until(() => s.logs().some((l) => l.msg === 'connection'), 'the access-log record')
  t.equal(st.kept.size, 0, 'forgotten once it ended')
  t.equal(st.released, 1, 'the tunnel slot released once')
  const records = s.logs().filter((l) => l.msg === 'connection')
  t.equal(records.length, 1, 'one record')
  t.match(records[0], { responseFlags: '-', bytesSent: 4, bytesReceived: 4 })
})

t.test('AuthorizationPolicy denies: refused as denied before any tunnel slot or dial', async (t) => {
  const s = await setup(t)
  const st = await stand(t, s, { peer: 'intruder', port: s.ports.echo, tunnel: 'free' })
  s.run(st.entry)
  await until(() => settled(st), 'the path to finish')
  t.same(st.calls, ['target', 'refuse:denied'])
  t.match(st.refusals[0], { kind: 'denied', reason: /./ })
  t.equal(s.workload.length, 0, 'nothing dialled')
})

t.test('no verified peer and a STRICT workload: refused as strict; PERMISSIVE: authorized with no identity', async (t) => {
  const s = await setup(t)
  s.snapshots = [compile(s.ports, { allow: 'client', mode: 'STRICT' })]
  const strict = await stand(t, s, { port: s.ports.echo })
  s.run(strict.entry)
  await until(() => settled(strict), 'the path to finish')
  t.same(strict.calls, ['target', 'refuse:strict'])
  s.snapshots = [compile(s.ports, { allow: 'client', mode: 'PERMISSIVE' })]
  const plain = await stand(t, s, { port: s.ports.echo })
  s.run(plain.entry)
  await until(() => settled(plain), 'the path to finish')
  t.same(plain.calls, ['target', 'refuse:denied'], 'the policy allows only a principal, and plaintext has none')
  t.equal(s.workload.length, 0, 'nothing dialled')
})

t.test('over a tunnel limit: the entry has answered, and nothing after it runs', async (t) => {
  const s = await setup(t)
  const st = await stand(t, s, { peer: 'client', port: s.ports.echo, tunnel: 'full' })
  s.run(st.entry)
  await new Promise((r) => setTimeout(r, 50))
  t.same(st.calls, ['target', 'tunnel'])
  t.equal(s.workload.length, 0, 'nothing dialled')
})

t.test('the workload is unreachable: refused with the errno code, the slot released', async (t) => {
  const s = await setup(t)
  const st = await stand(t, s, { peer: 'client', port: s.ports.down, tunnel: 'free' })
  s.run(st.entry)
  await until(() => settled(st), 'the path to finish')
  t.same(st.calls, ['target', 'tunnel', 'settle', 'refuse:unreachable'])
  t.same(st.refusals, [{ kind: 'unreachable', error: 'ECONNREFUSED' }])
  t.equal(st.released, 1)
})

t.test('the downstream goes before the dial: refused as gone, the slot released, nothing dialled', async (t) => {
  const s = await setup(t)
  const st = await stand(t, s, {
    peer: 'client', port: s.ports.echo, tunnel: 'free',
    settle: (st) => new Promise((resolve) => { st.down.once('close', () => resolve()); st.down.destroy() }),
  })
  s.run(st.entry)
  await until(() => settled(st), 'the path to finish')
  t.same(st.calls, ['target', 'tunnel', 'settle', 'refuse:gone'])
  t.equal(st.released, 1)
  await new Promise((r) => setTimeout(r, 50))
  t.equal(s.workload.length, 0, 'nothing dialled')
})

t.test('the policy changes while connecting: decided again with the new snapshot, refused, the workload connection closed', async (t) => {
  const s = await setup(t)
  s.snapshots = [compile(s.ports, { allow: 'client' }), compile(s.ports, { allow: 'someone-else' })]
  const st = await stand(t, s, { peer: 'client', port: s.ports.echo, tunnel: 'free' })
  s.run(st.entry)
  await until(() => settled(st), 'the path to finish')
  t.same(st.calls, ['target', 'tunnel', 'settle', 'refuse:denied'], 'never accepted')
  t.equal(st.released, 1)
  await until(() => s.workload.length === 1 && s.workload[0]!.destroyed, 'the dialled workload connection to close')
  t.pass('the dialled workload connection was closed')
})

t.test('an http port: accepted and handed to the request path, not dialled here; released and recorded when it ends', async (t) => {
  const s = await setup(t)
  const st = await stand(t, s, { peer: 'client', port: s.ports.http, tunnel: 'free' })
  s.run(st.entry)
  await until(() => settled(st), 'the path to finish')
  t.same(st.calls, ['target', 'tunnel', 'accept', 'keep'], 'no settle or dial: the request path connects per request')
  t.equal(s.served.length, 1)
  t.match(s.served[0], { protocol: 'http', conn: { port: s.ports.http, peer: ID('client') } })
  st.down.destroy() // as the request path does once the connection is done
  await until(() => st.released === 1 && st.kept.size === 0, 'released and forgotten')
  await until(() => s.logs().some((l) => l.msg === 'connection'), 'the access-log record')
  t.match(s.logs().filter((l) => l.msg === 'connection'), [{ responseFlags: '-' }])
})
