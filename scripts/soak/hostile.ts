// Hostile input (issue #15, item 3), one scenario per attack and port, run while the soak's
// loads go on: real attack tools (scripts/netns/workloads/abuse-client.ts for raw bytes and
// HTTP/2 frames, slowhttptest for slowloris and slow read) against the daemon that carries
// the legitimate traffic:
//   :15008    node-b's, from node-c (root; the HTTP/2 attacks with a certificate node-c's CA
//             really issues: fraud's, a workload of node-c)
//   :15006    node-c's, from node-b (root, never captured) to port 9300 of soak-open, a
//             PERMISSIVE workload of node-c, which iptables sends to :15006 (payments is STRICT,
//             and fraud's AuthorizationPolicy refuses plaintext: either refuses on arrival, which
//             would test nothing past the accept)
//   outbound  node-a's, from a second workload on node-a (uid 2009) to the payments VIP
//   admin     node-a's 127.0.0.1:15000, from root on node-a
// Each row's checks: the attacked daemon stayed up (same pid) and below MEMORY_BOUND_MIB at
// every sample, wrote at most a bounded number of log lines besides the access log, counted
// the abuse in a metric, and HTTP kept ≥ 90% of its open-loop rate alone (checked with the loads').
import { readFileSync, statSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { NodeIssuer } from '../../certs/issuer.ts'
import { serverName } from '../../certs/spiffe.ts'
import { total } from '../demo/telemetry.ts'
// The corpus is data the L7 tests share; the soak replays it under load.
import { HTTP_CORPUS, type HttpVector } from '../../test/fixtures/http-corpus.ts'
import type { RunAs } from '../netns/hosts.ts'
import type { HttpLoad, SoakMesh, TcpLoad } from './mesh.ts'
import { applyPolicy, type Check, type Loads, type Scenario } from './scenario.ts'

const here = (f: string): string => new URL(f, import.meta.url).pathname
const ABUSE = here('../netns/workloads/abuse-client.ts')
const NODE = process.execPath
const VIP = '10.96.0.20'
/** An identity node-c really holds (fraud runs there): node-b checks that the CA that signed a peer's leaf is its workload's node's. */
const FRAUD_ID = 'spiffe://cluster.local/ns/shop/sa/fraud'
const PAYMENTS_ID = 'spiffe://cluster.local/ns/shop/sa/payments'
/** The outbound attacker: a workload of its own on node-a, so its connections are captured there. */
const INTRUDER: RunAs = { uid: 2009, gid: 2009 }
/** The :15006 target: a workload of node-c that takes plaintext (PERMISSIVE; no AuthorizationPolicy selects it). */
const OPEN = { uid: 2010, gid: 2010 }
const OPEN_PORT = 9300
const HOSTILE_POLICY = `apiVersion: hostmesh.io/v1alpha1
kind: Workload
metadata: {name: soak-intruder, namespace: shop, labels: {app: soak-intruder}}
spec: {node: node-a, serviceAccount: soak-intruder, match: {uid: 2009}}
---
apiVersion: hostmesh.io/v1alpha1
kind: Workload
metadata: {name: soak-open, namespace: lab, labels: {app: soak-open}}
spec: {node: node-c, serviceAccount: soak-open, match: {uid: 2010}, ports: [{name: http, port: ${OPEN_PORT}}], mtls: {mode: PERMISSIVE}}
---
# A port is read as HTTP (the L7 path) when a Service says so.
apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: soak-open, namespace: lab}
spec:
  ports: [{name: http, port: 80, protocol: http, targetPort: http}]
  selector: {app: soak-open}
`

/**
 * What one daemon may hold under any one of these attacks at the default limits (docs/config.md,
 * "Memory under attack"): its RSS at every sample, worker threads included.
 */
export const MEMORY_BOUND_MIB = 512
/** Log lines besides the access log: the throttle's 5 per kind per 10 s and its summaries, with room. */
const logBound = (seconds: number): number => 40 + 3 * seconds
/** The loads' rate during an attack, against their rate alone. */
const MIN_RATE_SHARE = 0.9

interface Attacker {
  readonly host: 'node-a' | 'node-b' | 'node-c'
  readonly as?: RunAs
  readonly label: string
  readonly argv: readonly string[]
}

interface Counted { readonly metric: string; readonly labels?: Readonly<Record<string, string>> }

interface HostileAttack {
  readonly name: string
  readonly port: ':15008' | ':15006' | 'outbound' | 'admin'
  readonly target: 'node-a' | 'node-b' | 'node-c'
  /** What the attack does, for the row. */
  readonly what: string
  /** Processes that attack for `seconds` and print one JSON line; or `drive`, which attacks itself. */
  attackers?(mesh: SoakMesh, seconds: number): Promise<readonly Attacker[]>
  drive?(mesh: SoakMesh, seconds: number): Promise<readonly AttackResult[]>
  /**
   * Series whose growth shows the abuse was counted (their sum must grow). Empty for slow
   * read: a client that reads slowly is, to a server, a slow network; what bounds it is
   * backpressure, and the row's memory figure shows that.
   */
  readonly counted: readonly Counted[]
  /** The shortest attack that shows the count (a header timeout must pass: 10 s). */
  readonly minSeconds?: number
  /**
   * How long the next row waits after this one. A flood the daemon refused with resets leaves
   * the kernel's NAT of each refused connection in conntrack for 10 s
   * (nf_conntrack_tcp_timeout_close); a new connection that reuses such a source port within
   * that time is redirected as the refused one was (RELIABILITY.md, "Hostile input": an open
   * finding), so the rows after a flood wait it out.
   */
  readonly settleMs?: number
  /** Checks of what the attackers saw. */
  expect?(results: readonly AttackResult[], seconds: number): readonly Check[]
}

interface AttackResult { readonly label: string; readonly out: Record<string, unknown> }

const abuse = (spec: Record<string, unknown>): string[] => [NODE, ABUSE, JSON.stringify(spec)]
/** Two processes of 10,000 held connections: one process may hold no more fds than the machine's hard limit (20,000 here). */
const flood = (host: string, port: number, seconds: number, extra: Record<string, unknown> = {}): string[] =>
  ['sh', '-c', `ulimit -n 12000 && exec "$@"`, 'sh', ...abuse({ mode: 'hold', host, port, connections: 10_000, batch: 500, holdMs: seconds * 1000, durationMs: (seconds + 60) * 1000, ...extra })]

/** slowhttptest: -H slow headers (slowloris) or -X slow read, 1,000 connections at 200/s for `seconds`. */
function slowhttptest(kind: 'H' | 'X', url: string, seconds: number): string[] {
  const common = ['-c', '1000', '-r', '200', '-l', String(seconds), '-u', url, '-p', '3']
  return kind === 'H'
    ? ['slowhttptest', '-H', '-i', '5', '-x', '16', ...common]
    : ['slowhttptest', '-X', '-k', '20', '-n', '2', '-w', '32', '-y', '64', '-z', '32', ...common]
}

/** The last figures slowhttptest printed ("connected: 41" ...). */
function slowhttptestFigures(raw: string): Record<string, number | string> {
  // It colours its output and redraws the screen: the escapes go first.
  const out = raw.replace(/\x1b\[[0-9;]*[A-Za-z]/g, '')
  const figures: Record<string, number | string> = {}
  for (const key of ['initializing', 'pending', 'connected', 'error', 'closed']) {
    const all = [...out.matchAll(new RegExp(`^${key}:\\s+(\\d+)`, 'gm'))]
    if (all.length) figures[key] = Number(all.at(-1)![1])
  }
  const available = [...out.matchAll(/^service available:\s+(\S+)/gm)].at(-1)
  if (available) figures.serviceAvailable = available[1]!
  const exit = /^Exit status: (.*)$/m.exec(out)
  if (exit) figures.exit = exit[1]!
  return figures
}

/** fraud's certificate as node-c's CA issues it, as files for abuse-client's `tls`. */
async function peerTls(mesh: SoakMesh): Promise<Record<string, string>> {
  const issuer = await NodeIssuer.load(join(mesh.dir, 'node-c', 'certs'), 'cluster.local', 'node-c')
  const leaf = await issuer.mint(FRAUD_ID, 3_600_000)
  const files = { cert: join(mesh.dir, 'hostile-cert.pem'), key: join(mesh.dir, 'hostile-key.pem'), chain: join(mesh.dir, 'hostile-chain.pem') }
  writeFileSync(files.cert, leaf.certPem)
  writeFileSync(files.key, leaf.keyPem, { mode: 0o600 })
  writeFileSync(files.chain, leaf.chainPem)
  return { ...files, servername: serverName(PAYMENTS_ID)! }
}

/** The five HTTP/2 attacks at once, each from its own process and connections. */
function h2Attackers(host: 'node-a' | 'node-b' | 'node-c', as: RunAs | undefined, target: Record<string, unknown>, seconds: number): Attacker[] {
  const base = { mode: 'h2', durationMs: seconds * 1000, reconnect: true, maxFrames: 1e10, ...target }
  return [
    { label: 'rapid-reset', spec: { attack: 'rapid-reset', connections: 4 } },
    { label: 'continuation', spec: { attack: 'continuation', connections: 4 } },
    { label: 'settings', spec: { attack: 'settings', connections: 2 } },
    { label: 'ping', spec: { attack: 'ping', connections: 2 } },
    { label: 'big-headers', spec: { attack: 'big-headers', connections: 2, headerBytes: 1 << 20 } },
  ].map((a) => ({ host, ...(as ? { as } : {}), label: a.label, argv: abuse({ ...base, ...a.spec }) }))
}

const num = (v: unknown): number => (typeof v === 'number' ? v : 0)
const sumOf = (o: unknown): number => (o && typeof o === 'object' ? Object.values(o as Record<string, number>).reduce((a, b) => a + num(b), 0) : 0)

/**
 * Every HTTP/2 attacker met the server's end: its connections closed (or sent GOAWAY), or
 * refused at connect (at :15008 a flood costs its source 10 s of new connections).
 */
function h2Expect(results: readonly AttackResult[]): Check[] {
  return results.filter((r) => r.label !== 'rapid-reset').map((r) => ({
    name: `${r.label}: the server ended or refused the abusive connections`,
    ok: num(r.out.closedByServer) + sumOf(r.out.goaways) + sumOf(r.out.connectFailures) > 0,
    detail: `${num(r.out.connections)} connections, ${num(r.out.framesSent)} frames sent, closed by the server ${num(r.out.closedByServer)}, GOAWAY ${JSON.stringify(r.out.goaways ?? {})}, resets ${JSON.stringify(r.out.resets ?? {})}, responses ${JSON.stringify(r.out.responses ?? {})}`,
  }))
}

/**
 * The client counts as open what the kernel has accepted for the daemon too: a connection in a
 * listening socket's accept queue is connected before the daemon sees it. A loaded daemon can
 * leave some there at the end (CI saw 1,152 open against a cap of 1,024), so the bound is the
 * cap plus the accept queues (each thread's socket, 4,096, and the service manager's, 511).
 */
const ACCEPT_QUEUES = 4096 + 511

function floodExpect(cap: number, what: string) {
  return (results: readonly AttackResult[]): Check[] => {
    const opened = results.reduce((a, r) => a + num(r.out.opened), 0)
    const closed = results.reduce((a, r) => a + num(r.out.closedByServer), 0)
    const heldAtEnd = results.reduce((a, r) => a + num(r.out.heldAtEnd), 0)
    return [{ name: `the flood was held to ${what}, plus the accept queues`, ok: heldAtEnd <= cap + ACCEPT_QUEUES, detail: `${opened} of 20,000 connected, ${closed} closed by the server, ${heldAtEnd} still open at the end (cap ${cap})` }]
  }
}

const nodeB = (mesh: SoakMesh): string => mesh.host('node-b').ipv4
const nodeC = (mesh: SoakMesh): string => mesh.host('node-c').ipv4

const RAW = here('../netns/workloads/raw-client.ts')
const bytesOf = (b: string | Buffer): Buffer => (typeof b === 'string' ? Buffer.from(b, 'latin1') : b)
// The corpus' vectors refused at once (a timeout takes 10 s here; the HTTP/2 preface is
// answered as HTTP/2 on an http port). A refusal must get exactly its status. A control must
// pass the front, and then meets the example policy, not an origin: the route has no rule for
// most of its paths (404 from the source) and payments admits only checkout (403 at the
// destination). So a control's answer is any final status the front itself does not give.
const SMUGGLING = HTTP_CORPUS.filter((v) => v.by !== 'timeout' && !bytesOf(v.bytes).toString('latin1').startsWith('PRI * HTTP/2.0'))
const FRONT_ANSWERS = new Set([400, 405, 408, 413, 417, 431, 501])
const pastFront = (status: number): boolean => status >= 200 && !FRONT_ANSWERS.has(status)
const rightAnswer = (v: HttpVector, status: number | undefined): boolean =>
  status !== undefined && (v.expect === 200 ? pastFront(status) : status === v.expect)
/**
 * A vector refused in its body whose valid head was answered by the route first (a 404 from
 * the source when its body came in two reads; the rest of it is then not read). Counted apart:
 * the outbound row saw 3 of 3,025 (01:09 run), the 20 KB chunk extension each time.
 */
const routedFirst = (v: HttpVector, status: number | undefined): boolean => v.inBody === true && status !== undefined && pastFront(status)

/** The corpus replayed from `host` as `as`, again and again for `seconds`, 8 connections at a time; every answer checked. */
async function smuggle(mesh: SoakMesh, host: 'node-a' | 'node-b' | 'node-c', as: RunAs | undefined, address: string, port: number, seconds: number): Promise<AttackResult[]> {
  const input = JSON.stringify({ concurrency: 8, settleMs: 200, maxMs: 5000, entries: SMUGGLING.map((v, id) => ({ id, bytes: bytesOf(v.bytes).toString('base64') })) })
  const deadline = Date.now() + seconds * 1000
  let rounds = 0
  let sent = 0
  let lost = 0
  let routed = 0
  const wrong: string[] = []
  for (let i = 0; i < 10_000 && Date.now() < deadline; i++) {
    const r = await mesh.host(host).exec([NODE, RAW, address, String(port)], { ...as ?? {}, input, timeoutMs: 60_000 })
    rounds++
    for (const line of r.stdout.split('\n')) {
      if (!line.startsWith('{')) continue
      const o = JSON.parse(line) as { id: number; statuses: number[] }
      sent++
      const v = SMUGGLING[o.id]!
      const first = o.statuses.find((x) => x >= 200 || x < 0)
      // A refusal whose answer never arrived: the connection closed under a client still
      // sending (its body was refused mid-way). Nothing passed; it is counted, not failed.
      if (first === undefined && v.expect !== 200) lost++
      else if (routedFirst(v, first)) routed++
      else if (!rightAnswer(v, first)) wrong.push(`${v.name}: ${first} (want ${v.expect === 200 ? 'past the front' : v.expect})`)
    }
  }
  return [{ label: 'corpus', out: { rounds, vectors: SMUGGLING.length, sent, wrong: wrong.length, lost, routed, examples: wrong.slice(0, 3) } }]
}

function smugglingExpect(results: readonly AttackResult[]): Check[] {
  const r = results[0]!.out
  return [{
    name: 'every vector got its answer, every round (a refusal\'s answer lost to the close: at most 1 in 1,000, or 1; a body refusal answered by the route first: at most 1 in 100, or 1)',
    ok: num(r.sent) > 0 && num(r.wrong) === 0 && num(r.lost) <= Math.max(1, num(r.sent) / 1000) && num(r.routed) <= Math.max(1, num(r.sent) / 100),
    detail: `${num(r.rounds)} rounds of ${num(r.vectors)} vectors, ${num(r.sent)} replayed, ${num(r.wrong)} wrong ${JSON.stringify(r.examples)}, ${num(r.lost)} refusals closed before their answer was read, ${num(r.routed)} refused in the body after the route had answered the head`,
  }]
}

export const ATTACKS: readonly HostileAttack[] = [
  {
    name: 'hbone-flood', port: ':15008', target: 'node-b', what: '20,000 TCP connections opened and held',
    attackers: async (mesh, seconds) => [0, 1].map((i) => ({ host: 'node-c', label: `flood-${i}`, argv: flood(nodeB(mesh), 15008, seconds) })),
    counted: [{ metric: 'hostmesh_hbone_connections_refused_total' }],
    // Over hbone.maxConnectionsPerSource (512) and the source's rate (burst 1,000): the rest are closed at once; the held ones time out their handshake (10 s).
    expect: floodExpect(512, 'hbone.maxConnectionsPerSource (512)'),
  },
  {
    name: 'hbone-tls-garbage', port: ':15008', target: 'node-b', what: 'random bytes as a ClientHello, and random bytes after a real mTLS handshake, 8 connections at a time',
    attackers: async (mesh, seconds) => [
      { host: 'node-c', label: 'fake-hello', argv: abuse({ mode: 'garbage', host: nodeB(mesh), port: 15008, connections: 4, bytes: 4096, tlsRecord: true, durationMs: seconds * 1000, timeoutMs: 2000 }) },
      { host: 'node-c', label: 'after-handshake', argv: abuse({ mode: 'garbage', host: nodeB(mesh), port: 15008, connections: 4, bytes: 4096, tls: await peerTls(mesh), durationMs: seconds * 1000, timeoutMs: 2000 }) },
    ],
    counted: [{ metric: 'hostmesh_tls_handshake_failures_total' }],
    // Garbage after the handshake is a protocol error: its source waits 10 s (docs/mesh.md), and the next row needs it back.
    settleMs: 11_000,
  },
  {
    name: 'hbone-h2-abuse', port: ':15008', target: 'node-b', what: 'HTTP/2 over mTLS with a valid certificate: rapid reset, CONTINUATION flood, SETTINGS flood, PING flood and 1 MiB HEADERS, all at once',
    attackers: async (mesh, seconds) => h2Attackers('node-c', undefined, { host: nodeB(mesh), port: 15008, tls: await peerTls(mesh), method: 'CONNECT', authority: `${nodeB(mesh)}:8080` }, seconds),
    // The first flood caught costs node-c 10 s of new connections and sessions: those refusals count too.
    counted: [
      { metric: 'hostmesh_hbone_sessions_closed_total', labels: { reason: 'abuse' } }, { metric: 'hostmesh_hbone_sessions_closed_total', labels: { reason: 'flood' } },
      { metric: 'hostmesh_hbone_sessions_closed_total', labels: { reason: 'protocol' } }, { metric: 'hostmesh_hbone_connections_refused_total', labels: { reason: 'session_rate' } },
      { metric: 'hostmesh_hbone_connections_refused_total', labels: { reason: 'connection_rate' } },
    ],
    expect: h2Expect,
  },
  {
    name: 'plaintext-flood', port: ':15006', target: 'node-c', what: '20,000 TCP connections to soak-open:9300 opened and held',
    attackers: async (mesh, seconds) => [0, 1].map((i) => ({ host: 'node-b', label: `flood-${i}`, argv: flood(nodeC(mesh), OPEN_PORT, seconds) })),
    counted: [{ metric: 'hostmesh_inbound_plaintext_refused_total', labels: { reason: 'connections_per_source' } }],
    expect: floodExpect(1024, 'inboundPlaintext.maxConnectionsPerSource (1,024)'),
  },
  {
    name: 'plaintext-slowloris', port: ':15006', target: 'node-c', what: 'slowhttptest -H: 1,000 connections sending a header line every 5 s',
    attackers: async (mesh, seconds) => [{ host: 'node-b', label: 'slowloris', argv: slowhttptest('H', `http://${nodeC(mesh)}:${OPEN_PORT}/`, seconds) }],
    counted: [{ metric: 'hostmesh_http_rejected_total', labels: { direction: 'inbound', status: '408' } }],
    minSeconds: 12,
  },
  {
    name: 'plaintext-slow-read', port: ':15006', target: 'node-c', what: 'slowhttptest -X: 1,000 connections pipelining 20 requests each and reading 32 bytes every 2 s',
    attackers: async (mesh, seconds) => [{ host: 'node-b', label: 'slow-read', argv: slowhttptest('X', `http://${nodeC(mesh)}:${OPEN_PORT}/`, seconds) }],
    counted: [],
  },
  {
    name: 'plaintext-garbage', port: ':15006', target: 'node-c', what: 'random bytes (plain, and as a TLS ClientHello) to soak-open:9300, 8 connections at a time',
    attackers: async (mesh, seconds) => [
      { host: 'node-b', label: 'random', argv: abuse({ mode: 'garbage', host: nodeC(mesh), port: OPEN_PORT, connections: 4, bytes: 4096, durationMs: seconds * 1000, timeoutMs: 2000 }) },
      { host: 'node-b', label: 'fake-hello', argv: abuse({ mode: 'garbage', host: nodeC(mesh), port: OPEN_PORT, connections: 4, bytes: 4096, tlsRecord: true, durationMs: seconds * 1000, timeoutMs: 2000 }) },
    ],
    counted: [{ metric: 'hostmesh_http_rejected_total', labels: { direction: 'inbound', status: '400' } }],
  },
  {
    name: 'plaintext-smuggling', port: ':15006', target: 'node-c', what: `the request-smuggling corpus (test/fixtures/http-corpus.ts, ${SMUGGLING.length} vectors refused at once, controls included) replayed to soak-open:9300 again and again`,
    drive: (mesh, seconds) => smuggle(mesh, 'node-b', undefined, nodeC(mesh), OPEN_PORT, seconds),
    counted: [{ metric: 'hostmesh_http_rejected_total', labels: { direction: 'inbound', status: '400' } }],
    expect: smugglingExpect,
  },
  {
    name: 'plaintext-h2-abuse', port: ':15006', target: 'node-c', what: 'HTTP/2 (h2c) to soak-open:9300: rapid reset, CONTINUATION flood, SETTINGS flood, PING flood and 1 MiB HEADERS, all at once',
    attackers: async (mesh, seconds) => h2Attackers('node-b', undefined, { host: nodeC(mesh), port: OPEN_PORT, authority: `${nodeC(mesh)}:${OPEN_PORT}` }, seconds),
    counted: [{ metric: 'hostmesh_http2_sessions_closed_total', labels: { direction: 'inbound' } }],
    expect: h2Expect,
  },
  {
    name: 'outbound-flood', port: 'outbound', target: 'node-a', what: 'a second workload on node-a opens 20,000 connections to the payments VIP and holds them',
    attackers: async (_mesh, seconds) => [0, 1].map((i) => ({ host: 'node-a', as: INTRUDER, label: `flood-${i}`, argv: flood(VIP, 80, seconds) })),
    counted: [{ metric: 'hostmesh_workload_limit_refused_total', labels: { resource: 'connections' } }],
    expect: floodExpect(4096, 'outbound.maxConnectionsPerWorkload (4,096)'),
    settleMs: 12_000,
  },
  {
    name: 'outbound-slowloris', port: 'outbound', target: 'node-a', what: 'slowhttptest -H from a second workload to the payments VIP',
    attackers: async (_mesh, seconds) => [{ host: 'node-a', as: INTRUDER, label: 'slowloris', argv: slowhttptest('H', `http://${VIP}/`, seconds) }],
    counted: [{ metric: 'hostmesh_http_rejected_total', labels: { direction: 'outbound', status: '408' } }],
    minSeconds: 12,
  },
  {
    name: 'outbound-slow-read', port: 'outbound', target: 'node-a', what: 'slowhttptest -X from a second workload to the payments VIP',
    attackers: async (_mesh, seconds) => [{ host: 'node-a', as: INTRUDER, label: 'slow-read', argv: slowhttptest('X', `http://${VIP}/`, seconds) }],
    counted: [],
  },
  {
    name: 'outbound-garbage', port: 'outbound', target: 'node-a', what: 'random bytes (plain, and as a TLS ClientHello) from a second workload to the payments VIP',
    attackers: async (_mesh, seconds) => [
      { host: 'node-a', as: INTRUDER, label: 'random', argv: abuse({ mode: 'garbage', host: VIP, port: 80, connections: 4, bytes: 4096, durationMs: seconds * 1000, timeoutMs: 2000 }) },
      { host: 'node-a', as: INTRUDER, label: 'fake-hello', argv: abuse({ mode: 'garbage', host: VIP, port: 80, connections: 4, bytes: 4096, tlsRecord: true, durationMs: seconds * 1000, timeoutMs: 2000 }) },
    ],
    counted: [{ metric: 'hostmesh_http_rejected_total', labels: { direction: 'outbound', status: '400' } }],
  },
  {
    name: 'outbound-smuggling', port: 'outbound', target: 'node-a', what: `the request-smuggling corpus (${SMUGGLING.length} vectors) replayed from a second workload to the payments VIP again and again`,
    drive: (mesh, seconds) => smuggle(mesh, 'node-a', INTRUDER, VIP, 80, seconds),
    counted: [{ metric: 'hostmesh_http_rejected_total', labels: { direction: 'outbound', status: '400' } }],
    expect: smugglingExpect,
  },
  {
    name: 'outbound-h2-abuse', port: 'outbound', target: 'node-a', what: 'HTTP/2 (h2c) from a second workload to the payments VIP: rapid reset, CONTINUATION flood, SETTINGS flood, PING flood and 1 MiB HEADERS, all at once',
    attackers: async (_mesh, seconds) => h2Attackers('node-a', INTRUDER, { host: VIP, port: 80, authority: `payments.shop.svc.cluster.local` }, seconds),
    // Each session node ends for a flood costs the workload 10 s of new connections (daemon/limits/workload-limits.ts): those refusals show the whole chain.
    counted: [{ metric: 'hostmesh_workload_limit_refused_total', labels: { resource: 'abuse' } }],
    expect: h2Expect,
    // Those refusals are resets, as outbound-flood's are: their NAT stays 10 s, and checkout's
    // next connections that reuse a tuple are refused by the owner guard (docs/capture.md). The
    // next row waits it out, as after outbound-flood (CI saw 2 of admin-flood's 1,198 fail).
    settleMs: 12_000,
  },
  {
    name: 'admin-flood', port: 'admin', target: 'node-a', what: '20,000 connections to 127.0.0.1:15000 opened and held',
    attackers: async (_mesh, seconds) => [0, 1].map((i) => ({ host: 'node-a', label: `flood-${i}`, argv: flood('127.0.0.1', 15000, seconds) })),
    counted: [{ metric: 'hostmesh_admin_connections_refused_total', labels: { transport: 'tcp', reason: 'connections' } }],
    expect: floodExpect(128, 'admin.maxConnections (128)'),
  },
  {
    name: 'admin-slowloris', port: 'admin', target: 'node-a', what: 'slowhttptest -H against 127.0.0.1:15000',
    attackers: async (_mesh, seconds) => [{ host: 'node-a', label: 'slowloris', argv: slowhttptest('H', 'http://127.0.0.1:15000/metrics', seconds) }],
    counted: [{ metric: 'hostmesh_admin_connections_refused_total', labels: { transport: 'tcp', reason: 'timeout' } }],
    minSeconds: 12,
  },
  {
    name: 'admin-slow-read', port: 'admin', target: 'node-a', what: 'slowhttptest -X against 127.0.0.1:15000/metrics',
    attackers: async (_mesh, seconds) => [{ host: 'node-a', label: 'slow-read', argv: slowhttptest('X', 'http://127.0.0.1:15000/metrics', seconds) }],
    counted: [],
  },
  {
    name: 'admin-garbage', port: 'admin', target: 'node-a', what: 'random bytes to 127.0.0.1:15000, 8 connections at a time',
    attackers: async (_mesh, seconds) => [{ host: 'node-a', label: 'random', argv: abuse({ mode: 'garbage', host: '127.0.0.1', port: 15000, connections: 8, bytes: 4096, durationMs: seconds * 1000, timeoutMs: 2000 }) }],
    counted: [{ metric: 'hostmesh_admin_connections_refused_total', labels: { transport: 'tcp', reason: 'bad_request' } }],
  },
]

/** Runs the attack processes to their end (bounded), and reads each one's result. */
async function runAttackers(mesh: SoakMesh, attackers: readonly Attacker[], seconds: number): Promise<AttackResult[]> {
  const procs = attackers.map((x) => ({ a: x, p: mesh.host(x.host).spawn([...x.argv], x.as ?? {}) }))
  const deadline = Date.now() + (seconds + 90) * 1000
  while (procs.some((x) => x.p.running) && Date.now() < deadline) await sleep(250)
  for (const x of procs) if (x.p.running) await x.p.stop('SIGKILL')
  return procs.map(({ a: x, p }) => {
    const line = p.output.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)
    return { label: x.label, out: line ? (JSON.parse(line) as Record<string, unknown>) : x.argv[0] === 'slowhttptest' ? slowhttptestFigures(p.output) : { error: p.output.slice(-500) } }
  })
}

/** The pid of the daemon the stand-in runs (its one child). */
function daemonPid(mesh: SoakMesh, name: string): number {
  const manager = mesh.daemons.get(name)!.pid
  const children = readFileSync(`/proc/${manager}/task/${manager}/children`, 'utf8').trim().split(/\s+/).filter((s) => s !== '').map(Number)
  if (children.length !== 1) throw new Error(`${name}: expected one daemon under the service manager (pid ${manager}), found ${JSON.stringify(children)}`)
  return children[0]!
}

function rssMiB(pid: number): number | undefined {
  try {
    const m = /^VmRSS:\s+(\d+) kB/m.exec(readFileSync(`/proc/${pid}/status`, 'utf8'))
    return m ? Math.round(Number(m[1]) / 1024) : undefined
  } catch {
    return undefined
  }
}

const sumSeries = (m: Awaited<ReturnType<SoakMesh['metrics']>>, counted: readonly Counted[]): number => counted.reduce((a, c) => a + total(m, c.metric, c.labels), 0)

/**
 * HTTP's open-loop rate during against alone: requests answered per second at the rate offered,
 * the serving rate the bar is about. The TCP load is closed loop (each connection waits for
 * the one before), so its rate also measures the CPU the attack tools themselves take on this
 * 2-core machine: it is reported, not judged (every TCP connection must still succeed).
 */
function rateChecks(http: HttpLoad, tcp: TcpLoad, before: Loads, seconds: number): Check[] {
  const duringTcp = tcp.ok / (seconds + 2)
  const beforeTcp = before.tcp.ok / before.seconds
  return [{
    name: `HTTP kept ≥ ${MIN_RATE_SHARE * 100}% of its rate alone`, ok: http.rate >= MIN_RATE_SHARE * before.http.rate,
    detail: `${http.rate.toFixed(1)} req/s during, ${before.http.rate.toFixed(1)} alone (${((http.rate / before.http.rate) * 100).toFixed(1)}%); p99 ${before.http.p99ms} → ${http.p99ms} ms; TCP (closed loop) ${duringTcp.toFixed(1)} connections/s during, ${beforeTcp.toFixed(1)} alone`,
  }]
}

/** The soak-open server the :15006 rows attack, started once per mesh. */
const openServers = new WeakMap<SoakMesh, unknown>()

function hostileScenario(a: HostileAttack): Scenario {
  let seconds = 0
  return {
    name: a.name,
    bar: `the daemon stays up, legitimate traffic ≥ ${MIN_RATE_SHARE * 100}% of its rate alone, RSS ≤ ${MEMORY_BOUND_MIB} MiB, bounded logging, the abuse counted`,
    minSeconds: a.minSeconds ?? 4,
    async prepare(mesh) {
      if (a.port !== 'outbound' && a.port !== ':15006') return
      const file = join(mesh.policyDir, '70-soak-hostile.yaml')
      let written = false
      try {
        written = readFileSync(file, 'utf8') === HOSTILE_POLICY
      } catch { /* not written yet */ }
      if (!written) await applyPolicy(mesh, () => writeFileSync(file, HOSTILE_POLICY))
      if (a.port === ':15006' && !openServers.has(mesh)) openServers.set(mesh, await mesh.startHttpServerAs('node-c', 'soak-open', OPEN_PORT, OPEN))
    },
    async run(mesh, s) {
      seconds = s
      const target = a.target
      const pid = daemonPid(mesh, target)
      const logFile = join(mesh.dir, target, 'daemon.log')
      const logFrom = statSync(logFile).size
      const countedBefore = sumSeries(await mesh.metrics(target), a.counted)
      const rss: number[] = []
      let attacking = true
      const sampling = (async () => {
        for (let i = 0; i < (seconds + 120) * 4 && attacking; i++) {
          const r = rssMiB(pid)
          if (r !== undefined) rss.push(r)
          await sleep(250)
        }
      })()
      let results: AttackResult[]
      try {
        results = a.drive ? [...await a.drive(mesh, seconds)] : await runAttackers(mesh, await a.attackers!(mesh, seconds), seconds)
      } finally {
        attacking = false
        await sampling
      }
      // The daemon answers again once the attack is gone (the admin flood holds the port until then).
      await sleep(1000)
      const countedAfter = sumSeries(await mesh.metrics(target), a.counted)
      const said = readFileSync(logFile, 'utf8').slice(logFrom).split('\n').filter((l) => l.startsWith('{') && !l.includes('"access":'))
      const peak = Math.max(0, ...rss)
      const up = rssMiB(pid) !== undefined && daemonPid(mesh, target) === pid
      const checks: Check[] = [
        { name: `${target}'s daemon stayed up`, ok: up, detail: `pid ${pid}${up ? '' : ' is gone'}` },
        { name: `${target}'s RSS stayed ≤ ${MEMORY_BOUND_MIB} MiB`, ok: rss.length > 0 && peak <= MEMORY_BOUND_MIB, detail: `peak ${peak} MiB over ${rss.length} samples (first ${rss[0]} MiB)` },
        { name: `${target} logged ≤ ${logBound(seconds)} lines besides the access log, none long`, ok: said.length <= logBound(seconds) && said.every((l) => l.length < 2000), detail: `${said.length} lines in ${seconds} s${said.length ? `, e.g. ${said[0]!.slice(0, 200)}` : ''}` },
        ...a.counted.length === 0 ? [] : [{ name: 'the abuse was counted', ok: countedAfter > countedBefore, detail: `${a.counted.map((c) => `${c.metric}${c.labels ? JSON.stringify(c.labels) : ''}`).join(' + ')}: ${countedBefore} → ${countedAfter}` }],
        ...a.expect?.(results, seconds) ?? [],
      ]
      return { did: `${a.port}: ${a.what}; attackers: ${results.map((r) => `${r.label} ${JSON.stringify(r.out).slice(0, 300)}`).join('; ')}`, checks }
    },
    loadChecks: (http, tcp, before) => rateChecks(http, tcp, before, seconds),
    ...a.settleMs ? { cleanup: () => sleep(a.settleMs!) } : {},
  }
}

export const HOSTILE: readonly Scenario[] = ATTACKS.map(hostileScenario)
