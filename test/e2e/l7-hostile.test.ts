// The request-smuggling and robustness corpus (test/fixtures/http-corpus.ts) replayed byte for
// byte against real daemons on three namespace hosts, on both sides of the mesh:
//   source       checkout (uid 2001, node-a) → the payments VIP 10.96.0.20:80, captured into
//                node-a's outbound L7 path; controls go on to payments-v1 (node-b)
//   destination  a process that is no mesh workload (uid 2999, never captured) on node-a →
//                fraud's port 10.77.0.13:9090, redirected into node-c's PERMISSIVE plaintext
//                listener (:15006) and its inbound L7 path
// For every vector: the status the corpus expects, the connection closed after a refusal (and
// kept after a control), and the upstream server received exactly the controls' requests and
// none of the refused ones. The header timeout is 1 s here, so slowloris takes a second.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { testNet, type HostProcess, type RunAs, type TestHost } from '../../scripts/netns/hosts.ts'
import { meshNodeConfigs, untilReady } from '../../scripts/netns/mesh-nodes.ts'
import { HTTP_CORPUS, type HttpVector } from '../fixtures/http-corpus.ts'
import { CLI } from '../helpers/cli.ts'
import { e2eSkip } from '../helpers/e2e.ts'

const EXAMPLES = new URL('../../policy/examples/', import.meta.url).pathname
const SERVER = new URL('../../scripts/netns/workloads/http-server.ts', import.meta.url).pathname
const RAW = new URL('../../scripts/netns/workloads/raw-client.ts', import.meta.url).pathname
const NODE = process.execPath
const HEADER_TIMEOUT_MS = 1000
/** A uid no Workload matches: its connections are not captured on node-a. */
const OUTSIDER = { uid: 2999, gid: 2999 }

// Every path of payments goes to v1, and checkout may call any path of it: the corpus'
// controls use `/`, `*` and others that the example route and policy do not cover.
const EXTRA = `apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: payments-rest, namespace: shop}
spec:
  parentRefs: [{name: payments, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /}}]
      backendRefs: [{name: payments-v1, port: 80}]
---
apiVersion: hostmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: payments-any-path-from-checkout, namespace: shop}
spec:
  selector: {matchLabels: {app: payments}}
  action: ALLOW
  rules:
    - from: [{source: {principals: ["cluster.local/ns/shop/sa/checkout"]}}]
      to: [{operation: {ports: [8080]}}]
`

interface Outcome {
  readonly id: number | string
  /** Every response status in order, 1xx included; -1 for bytes that are not a response. */
  readonly statuses: readonly number[]
  readonly closed: 'fin' | 'reset' | false
  readonly ms: number
  readonly firstResponseMs: number | null
  /** The first bytes received, hex. */
  readonly head: string
  readonly error?: string
}

interface Sent {
  readonly id: number | string
  readonly bytes: string | Buffer
  readonly dribbleMs?: number
  readonly maxMs?: number
}

/**
 * The HTTP/2 connection preface: on an HTTP/1.1-only connection a bad request line (the
 * corpus' expectation), but a mesh `http` port takes HTTP/2 with prior knowledge by design
 * (DESIGN.md, "L7 (HTTP)"), so hostmesh must answer it as HTTP/2: its SETTINGS frame.
 */
const PREFACE = 'PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n'
const bytesOf = (b: string | Buffer): Buffer => (typeof b === 'string' ? Buffer.from(b, 'latin1') : b)
const isPreface = (v: HttpVector): boolean => bytesOf(v.bytes).equals(bytesOf(PREFACE))
/** An HTTP/2 frame header (RFC 9113 §4.1): type SETTINGS (4) on stream 0, not an ACK. */
const SETTINGS_FRAME = /^[0-9a-f]{6}0400(?:00){4}/

const isControl = (v: HttpVector): boolean => v.expect === 200
const requestsOf = (v: HttpVector): number => v.requests ?? (isControl(v) ? 1 : 0)
const closesOf = (v: HttpVector): boolean => v.closes ?? !isControl(v)

/** Sends each entry on its own connection from `host` as `as`; results by id. */
async function replay(host: TestHost, as: RunAs, address: string, port: number, entries: readonly Sent[], opts: { settleMs?: number; maxMs?: number } = {}): Promise<Map<string, Outcome>> {
  const input = JSON.stringify({
    concurrency: 48, settleMs: opts.settleMs ?? 400, maxMs: opts.maxMs ?? 8000,
    entries: entries.map((e) => ({ id: e.id, bytes: bytesOf(e.bytes).toString('base64'), ...(e.dribbleMs ? { dribbleMs: e.dribbleMs } : {}), ...(e.maxMs ? { maxMs: e.maxMs } : {}) })),
  })
  const r = await host.exec([NODE, RAW, address, String(port)], { ...as, input, timeoutMs: 40_000 })
  const out = new Map<string, Outcome>()
  for (const line of r.stdout.split('\n')) {
    if (!line.startsWith('{')) continue
    const o = JSON.parse(line) as Outcome
    out.set(String(o.id), o)
  }
  if (out.size !== entries.length) throw new Error(`raw-client answered ${out.size} of ${entries.length} entries (exit ${r.code}): ${r.stderr.slice(0, 2000)}`)
  return out
}

const reqLines = (servers: readonly HostProcess[]): string[] => servers.flatMap((s) => s.output.split('\n').filter((l) => l.startsWith('REQ ')))

t.test('the hostile-client corpus on both sides of the mesh', { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: ['node-a', 'node-b', 'node-c'] })
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-l7-hostile-'))
  cpSync(EXAMPLES, join(dir, 'policy.d'), { recursive: true })
  writeFileSync(join(dir, 'policy.d', '60-e2e-hostile.yaml'), EXTRA)
  // fraud-deny-foreign denies every peer outside the shop namespace, and plaintext has no
  // peer at all: without it, fraud's PERMISSIVE port takes plaintext from anyone.
  const policies = join(dir, 'policy.d', '40-policies.yaml')
  const docs = readFileSync(policies, 'utf8').split(/^---$/m)
  const kept = docs.filter((d) => !/name: fraud-deny-foreign\b/.test(d))
  if (kept.length !== docs.length - 1) throw new Error('policy/examples/40-policies.yaml no longer has the fraud-deny-foreign policy this test removes')
  writeFileSync(policies, kept.join('---'))
  const configs = await meshNodeConfigs(net.hosts, dir, { policyDir: join(dir, 'policy.d'), extra: `drainSeconds: 1\nhttp: {headerTimeout: ${HEADER_TIMEOUT_MS / 1000}s}\n` })
  const daemons = new Map<string, HostProcess>()
  for (const h of net.hosts) daemons.set(h.name, h.spawn([NODE, CLI, 'run', '--config', configs.get(h.name)!]))
  await Promise.all(net.hosts.map((h) => untilReady(h, daemons.get(h.name)!)))
  const [a, b, c] = [net.host('node-a'), net.host('node-b'), net.host('node-c')]
  // node's own limit on a request head is 16 KiB, hostmesh's 60 KiB: the corpus' controls just
  // under hostmesh's limit (plus the forwarding fields hostmesh adds) must fit the servers too.
  const server = (name: string, port: number) => [NODE, '--max-http-header-size=81920', SERVER, name, String(port)]
  const v1 = b.spawn(server('payments-v1', 8080), { uid: 2002, gid: 2002 })
  const v2 = c.spawn(server('payments-v2', 8080), { uid: 2002, gid: 2002 })
  const fraud = c.spawn(server('fraud', 9090), { uid: 2003, gid: 2003 })
  await Promise.all([v1, v2, fraud].map((p) => p.waitFor(/listening/)))
  t.teardown(() => {
    if (t.passing()) return
    for (const [name, d] of daemons) t.comment(`--- ${name}\n${d.output.slice(-2000)}`)
  })

  const sides = [
    { name: 'source (checkout → payments VIP, outbound L7 on node-a)', from: { uid: 2001, gid: 2001 }, address: '10.96.0.20', port: 80, servers: [v1, v2] },
    { name: 'destination (outsider → fraud, PERMISSIVE plaintext on node-c)', from: OUTSIDER, address: '10.77.0.13', port: 9090, servers: [fraud] },
  ] as const

  // Sanity first: a plain GET goes through on both sides (else every control fails alike).
  for (const side of sides) {
    const r = await replay(a, side.from, side.address, side.port, [{ id: 0, bytes: 'GET /sanity HTTP/1.1\r\nHost: svc.test\r\n\r\n' }])
    if (r.get('0')?.statuses[0] !== 200) throw new Error(`${side.name}: a plain GET got ${JSON.stringify(r.get('0'))}`)
  }

  for (const side of sides) {
    await t.test(`every corpus vector, ${side.name}`, async (t) => {
      const before = reqLines(side.servers).length
      const started = Date.now()
      const results = await replay(a, side.from, side.address, side.port, HTTP_CORPUS.map((v, id) => ({ id, bytes: v.bytes, ...(isPreface(v) ? { maxMs: 1500 } : {}) })))
      t.comment(`${HTTP_CORPUS.length} vectors in ${Date.now() - started} ms`)
      for (const [id, v] of HTTP_CORPUS.entries()) {
        const o = results.get(String(id))!
        const finals = o.statuses.filter((s) => s >= 200 || s < 0)
        const what = `${v.name}: ${JSON.stringify(o)}`
        if (isPreface(v)) {
          t.match(o.head, SETTINGS_FRAME, `answered as HTTP/2 (a SETTINGS frame), as an http port must: ${what}`)
          continue
        }
        t.equal(finals[0], v.expect, `status ${v.expect}: ${what}`)
        t.equal(finals.length, Math.max(1, requestsOf(v)), `one answer per request: ${what}`)
        if (closesOf(v)) t.not(o.closed, false, `closed after answering: ${what}`)
        else t.equal(o.closed, false, `kept open: ${what}`)
        if (v.expect === 408) {
          t.ok(o.firstResponseMs !== null && o.firstResponseMs >= HEADER_TIMEOUT_MS - 100 && o.firstResponseMs < HEADER_TIMEOUT_MS + 1500, `408 after the ${HEADER_TIMEOUT_MS} ms header timeout (${o.firstResponseMs} ms): ${v.name}`)
        } else if (!isControl(v)) {
          t.ok(o.firstResponseMs !== null && o.firstResponseMs < HEADER_TIMEOUT_MS, `refused at once (${o.firstResponseMs} ms): ${v.name}`)
        }
      }
      // Give the servers' stdout a moment to arrive, then compare what reached them.
      await new Promise((r) => setTimeout(r, 300))
      const seen = reqLines(side.servers).slice(before)
      const controls = HTTP_CORPUS.reduce((n, v) => n + requestsOf(v), 0)
      t.equal(seen.length, controls, `the upstream server got exactly the controls' ${controls} requests, none of the refused ones`)
      t.same(seen.filter((l) => /admin|evil|SMUGGLED/i.test(l)), [], 'no smuggled request reached the upstream server')
      if (seen.length !== controls) t.comment(seen.join('\n'))
    })
  }

  await t.test('slowloris and an oversize head, both sides', async (t) => {
    // Header bytes keep arriving, one every 100 ms: the timeout runs from the request's
    // start, not from the last byte, so they do not keep the connection alive.
    const slow = `GET / HTTP/1.1\r\nHost: svc.test\r\nX-Slow: ${'a'.repeat(60)}`
    const oversize = `GET / HTTP/1.1\r\nHost: svc.test\r\nX-Big: ${'b'.repeat(70 * 1024)}\r\n\r\n`
    const runs = await Promise.all(sides.map(async (side) => {
      const before = reqLines(side.servers).length
      const r = await replay(a, side.from, side.address, side.port, [
        { id: 'dribble', bytes: slow, dribbleMs: 100 },
        { id: 'oversize', bytes: oversize },
      ])
      return { side, r, before }
    }))
    for (const { side, r, before } of runs) {
      const dribble = r.get('dribble')!
      t.same(dribble.statuses, [408], `${side.name}: 408 (${JSON.stringify(dribble)})`)
      t.not(dribble.closed, false, `${side.name}: closed after the 408`)
      t.ok(dribble.firstResponseMs !== null && dribble.firstResponseMs >= HEADER_TIMEOUT_MS - 100 && dribble.firstResponseMs < HEADER_TIMEOUT_MS + 1500, `${side.name}: 408 after ~${HEADER_TIMEOUT_MS} ms (${dribble.firstResponseMs} ms)`)
      const big = r.get('oversize')!
      t.same(big.statuses, [431], `${side.name}: 431 (${JSON.stringify(big)})`)
      t.not(big.closed, false, `${side.name}: closed after the 431`)
      await new Promise((res) => setTimeout(res, 100))
      t.equal(reqLines(side.servers).length, before, `${side.name}: the upstream server saw neither`)
    }
  })
})
