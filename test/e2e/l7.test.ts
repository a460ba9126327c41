// The L7 path on three real hosts: checkout (uid 2001, node-a) calls payments over HTTP at
// the VIP 10.96.0.20:80 with real clients (curl, wrk, Node's WebSocket); the example HTTPRoute
// splits /pay 90/10 between payments-v1 (node-b) and payments-v2 (node-c), whose hostmesh
// authorizes each request. One set of daemons serves every subtest: EXTRA holds the routes and
// policies all of them need. The subtests that read a process's output (the servers' REQ lines,
// the daemons' access log, both kept to their first MiB) come before the heavy ones (2,000
// requests, a wrk run).
import { cpSync, mkdtempSync, renameSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { testNet, type HostProcess, type TestHost } from '../../scripts/netns/hosts.ts'
import { meshNodeConfigs, untilReady } from '../../scripts/netns/mesh-nodes.ts'
import { logLines, parseMetrics, type Sample } from '../../scripts/demo/telemetry.ts'
import { CLI } from '../helpers/cli.ts'
import { e2eSkip } from '../helpers/e2e.ts'

const EXAMPLES = new URL('../../policy/examples/', import.meta.url).pathname
const SERVER = new URL('../../scripts/netns/workloads/http-server.ts', import.meta.url).pathname
const WS_CLIENT = new URL('../../scripts/netns/workloads/ws-client.ts', import.meta.url).pathname
const NODE = process.execPath
const BLUE = '{name: payments-v1, port: 80, weight: 100}\n        - {name: payments-v2, port: 80, weight: 0}'
const GREEN = '{name: payments-v1, port: 80, weight: 0}\n        - {name: payments-v2, port: 80, weight: 100}'
// No catch-all rule: a path no rule matches (/nothing) gets 404 NR. /legacy is rewritten into
// /pay/v1, which the example AuthorizationPolicy allows: the destination authorizes the
// request as it arrives, after the source's rewrite.
// The blue-green route is its own HTTPRoute, as an operator would keep it; the test flips it.
const EXTRA = `apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: payments-blue-green, namespace: shop}
spec:
  parentRefs: [{name: payments, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /pay/bg}}]
      backendRefs:
        - ${BLUE}
---
apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: payments-e2e, namespace: shop}
spec:
  parentRefs: [{name: payments, port: 80}]
  rules:
    - name: rewrite
      matches: [{path: {type: PathPrefix, value: /legacy}}]
      filters:
        - type: URLRewrite
          urlRewrite: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /pay/v1}}
        - type: RequestHeaderModifier
          requestHeaderModifier: {set: [{name: x-env, value: e2e}], remove: [x-debug]}
        - type: ResponseHeaderModifier
          responseHeaderModifier: {set: [{name: x-mesh, value: hostmesh}], remove: [x-server]}
      backendRefs: [{name: payments-v1, port: 80}]
    - name: moved
      matches: [{path: {type: PathPrefix, value: /old}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}
    - name: admin
      matches: [{path: {type: PathPrefix, value: /admin}}]
      backendRefs: [{name: payments-v1, port: 80}]
    - name: websocket
      matches: [{path: {type: Exact, value: /ws}}]
      backendRefs: [{name: payments-v2, port: 80}]
---
apiVersion: hostmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: payments-websocket, namespace: shop}
spec:
  selector: {matchLabels: {app: payments}}
  action: ALLOW
  rules:
    - from: [{source: {principals: ["cluster.local/ns/shop/sa/checkout"]}}]
      to: [{operation: {ports: [8080], methods: [GET], paths: [/ws]}}]
`
const XFCC = 'By=spiffe://cluster.local/ns/shop/sa/payments;URI=spiffe://cluster.local/ns/shop/sa/checkout'
/** Envoy's default histogram buckets, which Istio's request histograms use. */
const ENVOY_LE = ['0.5', '1', '5', '10', '25', '50', '100', '250', '500', '1000', '2500', '5000', '10000', '30000', '60000', '300000', '600000', '1800000', '3600000', '+Inf']

interface Echo { name: string; method: string; url: string; httpVersion: string; headers: Record<string, string>; body: number }
interface WsResult { opened: boolean; echoes: string[]; closeCode: number | null; error?: string }

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
/** The requests a workload server saw, as "METHOD target". */
const seen = (p: HostProcess): string[] => p.output.split('\n').filter((l) => l.startsWith('REQ ')).map((l) => l.slice(4))
/** Whether `p` printed the REQ line `line` within `ms` (its stdout reaches this process a little after the response). */
const saw = async (p: HostProcess, line: string, ms = 2000): Promise<boolean> => {
  for (const deadline = Date.now() + ms; !seen(p).includes(line) && Date.now() < deadline;) await sleep(20)
  return seen(p).includes(line)
}

t.test('L7 through the mesh', { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: ['node-a', 'node-b', 'node-c'] })
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-l7-'))
  const policyDir = join(dir, 'policy.d')
  cpSync(EXAMPLES, policyDir, { recursive: true })
  writeFileSync(join(policyDir, '60-e2e.yaml'), EXTRA)
  const configs = await meshNodeConfigs(net.hosts, dir, { policyDir, extra: 'drainSeconds: 1\n' })
  const daemons = new Map<string, HostProcess>()
  for (const h of net.hosts) daemons.set(h.name, h.spawn([NODE, CLI, 'run', '--config', configs.get(h.name)!]))
  for (const h of net.hosts) await untilReady(h, daemons.get(h.name)!)
  const [a, b, c] = [net.host('node-a'), net.host('node-b'), net.host('node-c')]
  const v1 = b.spawn([NODE, SERVER, 'payments-v1', '8080'], { uid: 2002, gid: 2002 })
  const v2 = c.spawn([NODE, SERVER, 'payments-v2', '8080'], { uid: 2002, gid: 2002 })
  await v1.waitFor(/listening/)
  await v2.waitFor(/listening/)
  const curl = (args: string[], timeoutMs = 20_000) => a.exec(['curl', '-sS', '-m', '10', ...args], { uid: 2001, gid: 2001, timeoutMs })
  const admin = (h: TestHost, path: string) => h.exec(['curl', '-sS', '-m', '2', `http://127.0.0.1:15000${path}`])
  const metrics = async (h: TestHost): Promise<Sample[]> => parseMetrics((await admin(h, '/metrics')).stdout)
  /** The response body of `curl -i` output (after the head), parsed. */
  const echoOf = (out: string): Echo => JSON.parse(out.slice(out.indexOf('\r\n\r\n') + 4)) as Echo
  t.teardown(() => {
    if (t.passing()) return
    for (const [name, d] of daemons) t.comment(`--- ${name}\n${d.output.slice(-4000)}`)
  })

  await t.test('a GET reaches a payments version, with the route\'s header and the verified peer', async (t) => {
    const r = await curl(['-i', 'http://10.96.0.20/pay'])
    t.match(r.stdout, /^HTTP\/1\.1 200/, r.stderr)
    const e = echoOf(r.stdout)
    t.match(e.name, /^payments-v[12]$/)
    t.equal(e.headers['x-routed-by'], 'hostmesh', 'the canary rule\'s RequestHeaderModifier')
    t.equal(e.headers['x-forwarded-client-cert'], XFCC, 'the destination names the verified peer')
  })

  await t.test('path rewrite, header set/remove, redirect and 404 for no route, seen by curl and by the server', async (t) => {
    const r = await curl(['-i', '-H', 'x-debug: 1', '-H', 'x-env: prod', 'http://10.96.0.20/legacy/orders?id=7&x=a%20b'])
    t.match(r.stdout, /^HTTP\/1\.1 200/, `rewritten request answered: ${r.stdout.slice(0, 300)} ${r.stderr}`)
    const e = echoOf(r.stdout)
    t.equal(e.name, 'payments-v1')
    t.equal(e.url, '/pay/v1/orders?id=7&x=a%20b', 'ReplacePrefixMatch /legacy → /pay/v1, the query string kept')
    t.ok(await saw(v1, 'GET /pay/v1/orders?id=7&x=a%20b'), 'the server\'s REQ line shows the rewritten target')
    t.equal(e.headers['x-env'], 'e2e', 'RequestHeaderModifier set replaces the client\'s value')
    t.notOk('x-debug' in e.headers, 'RequestHeaderModifier remove: the server never gets x-debug')
    t.match(r.stdout, /\r\nx-mesh: hostmesh\r\n/i, 'ResponseHeaderModifier set: curl sees x-mesh')
    t.notMatch(r.stdout.slice(0, r.stdout.indexOf('\r\n\r\n')), /\r\nx-server:/i, 'ResponseHeaderModifier remove: curl never sees the server\'s x-server')

    const moved = await curl(['-i', 'http://10.96.0.20/old/thing?q=1'])
    t.match(moved.stdout, /^HTTP\/1\.1 301/, `redirected: ${moved.stdout.slice(0, 300)} ${moved.stderr}`)
    t.match(moved.stdout, /\r\nlocation: http:\/\/10\.96\.0\.20\/new\/thing\?q=1\r\n/i, 'Location: the prefix replaced, the query kept, port 80 left out')

    const none = await curl(['-i', 'http://10.96.0.20/nothing/here'])
    t.match(none.stdout, /^HTTP\/1\.1 404/, `no route: ${none.stdout.slice(0, 300)} ${none.stderr}`)
    // A request after both, so the servers' captured output is known to cover them.
    t.equal(echoOf((await curl(['-i', '-H', 'x-canary: always', 'http://10.96.0.20/pay/after-redirect'])).stdout).name, 'payments-v2')
    t.ok(await saw(v2, 'GET /pay/after-redirect'), 'v2 saw the request sent after them')
    const both = [...seen(v1), ...seen(v2)]
    t.same(both.filter((l) => /\/old|\/new|\/nothing/.test(l)), [], 'neither server saw the redirected or the unrouted request')
    const log = logLines(daemons.get('node-a')!.output).filter((l) => l['access'] === 'http' && l['reporter'] === 'source')
    t.match(log.find((l) => l['path'] === '/nothing/here'), { status: 404, responseFlags: 'NR', route: null, upstream: null }, 'the source access log: 404 NR, no route, no upstream')
    t.match(log.find((l) => l['path'] === '/old/thing'), { status: 301, responseFlags: '-', route: 'HTTPRoute/shop/payments-e2e', upstream: null }, 'the redirect answered by the source')
  })

  await t.test('L7 authorization: GET /pay allowed and POST /admin denied on one connection; XFCC cannot be forged', async (t) => {
    const w = (tag: string) => ['-w', `\n${tag} %{http_code} %{num_connects}\n`]
    const r = await curl([...w('first'), 'http://10.96.0.20/pay/authz-before',
      '--next', ...w('denied'), '-X', 'POST', '-d', 'secret=1', 'http://10.96.0.20/admin/users',
      '--next', ...w('after'), 'http://10.96.0.20/pay/authz-after'])
    t.match(r.stdout, /\nfirst 200 1\n/, `GET /pay allowed, on a new connection: ${r.stdout} ${r.stderr}`)
    t.match(r.stdout, /^RBAC: access denied\n\ndenied 403 0\n/m, 'POST /admin denied with 403 "RBAC: access denied" on the same connection')
    t.match(r.stdout, /\nafter 200 0\n/, 'and the connection still serves an allowed request')
    const reached = async (line: string): Promise<boolean> => (await Promise.all([saw(v1, line), saw(v2, line)])).some(Boolean)
    t.ok(await reached('GET /pay/authz-before') && await reached('GET /pay/authz-after'), 'the allowed requests, before and after the denied one, reached a server')
    const both = [...seen(v1), ...seen(v2)]
    t.same(both.filter((l) => l.includes('/admin')), [], 'no server saw the denied request')
    const dest = logLines(daemons.get('node-b')!.output).find((l) => l['access'] === 'http' && l['path'] === '/admin/users')
    t.match(dest, { reporter: 'destination', status: 403, responseFlags: 'UAEX', src: { principal: 'spiffe://cluster.local/ns/shop/sa/checkout' } }, 'the destination logs the denial')

    const forged = await curl(['-i', '-H', 'x-forwarded-client-cert: By=spiffe://cluster.local/ns/shop/sa/payments;URI=spiffe://cluster.local/ns/shop/sa/admin', 'http://10.96.0.20/pay/forged'])
    t.match(forged.stdout, /^HTTP\/1\.1 200/, forged.stderr)
    t.equal(echoOf(forged.stdout).headers['x-forwarded-client-cert'], XFCC, 'the server sees the verified peer only, never the client\'s copy')
  })

  await t.test('HTTP/2 with prior knowledge on the http port: routed, with XFCC, and HTTP/2 at the server', async (t) => {
    const r = await curl(['-i', '--http2-prior-knowledge', 'http://10.96.0.20/pay/h2'])
    t.match(r.stdout, /^HTTP\/2 200/, `${r.stdout.slice(0, 300)} ${r.stderr}`)
    const e = echoOf(r.stdout)
    t.equal(e.httpVersion, '2.0', 'HTTP/2 from the client goes upstream as HTTP/2')
    t.match(e.name, /^payments-v[12]$/)
    t.equal(e.headers['x-routed-by'], 'hostmesh', 'the canary rule matched')
    t.equal(e.headers['x-forwarded-client-cert'], XFCC)
    const forged = await curl(['-i', '--http2-prior-knowledge', '-H', 'x-canary: always', '-H', 'x-forwarded-client-cert: By=x;URI=spiffe://cluster.local/ns/shop/sa/admin', 'http://10.96.0.20/pay/h2-pinned'])
    t.match(forged.stdout, /^HTTP\/2 200/, forged.stderr)
    t.match(echoOf(forged.stdout), { name: 'payments-v2', httpVersion: '2.0', headers: { 'x-forwarded-client-cert': XFCC } }, 'x-canary pins v2; a forged XFCC is replaced')
    const rewritten = await curl(['-i', '--http2-prior-knowledge', 'http://10.96.0.20/legacy/h2?k=v'])
    t.match(echoOf(rewritten.stdout), { name: 'payments-v1', url: '/pay/v1/h2?k=v', httpVersion: '2.0', headers: { 'x-env': 'e2e' } }, 'the rewrite rule applies to HTTP/2 too')
    const denied = await curl(['-i', '--http2-prior-knowledge', '-X', 'POST', 'http://10.96.0.20/admin/h2'])
    t.match(denied.stdout, /^HTTP\/2 403/, `denied over HTTP/2 too: ${denied.stdout.slice(0, 200)}`)
  })

  await t.test('WebSocket upgrade through the mesh (Node\'s WebSocket client)', async (t) => {
    const out = await a.mustExec([NODE, WS_CLIENT, 'ws://10.96.0.20/ws', '3', '1000'], { uid: 2001, gid: 2001, timeoutMs: 20_000 })
    const r = JSON.parse(out) as WsResult
    t.equal(r.opened, true, `the upgrade succeeded: ${out}`)
    t.same(r.echoes.slice(0, 2), ['payments-v2: hello 1', 'payments-v2: hello 2'], 'each message echoed by the routed version')
    t.equal(r.echoes[2], `payments-v2: big ${'x'.repeat(996)}`, 'a 1,000-byte message (16-bit frame length) intact')
    t.equal(r.error, undefined)
    t.ok(await saw(v2, 'UPGRADE /ws'), 'payments-v2 saw the upgrade')
  })

  await t.test('request metrics from both reporters match the requests sent', async (t) => {
    /** istio_requests_total on some hosts, summed by the labels this test controls. */
    const counts = async (hosts: TestHost[]): Promise<Record<string, number>> => {
      const out: Record<string, number> = {}
      for (const h of hosts) {
        for (const s of await metrics(h)) {
          if (s.name !== 'istio_requests_total') continue
          const l = s.labels
          const key = `${h.name} ${l['reporter']} ${l['source_workload']} ${l['destination_service']} ${l['destination_workload']} ${l['response_code']} ${l['response_flags']}`
          out[key] = (out[key] ?? 0) + s.value
        }
      }
      return out
    }
    const delta = (after: Record<string, number>, before: Record<string, number>): Record<string, number> =>
      Object.fromEntries(Object.entries(after).map(([k, v]) => [k, v - (before[k] ?? 0)] as const).filter(([, v]) => v !== 0).sort(([x], [y]) => (x < y ? -1 : 1)))
    const hosts = [a, b, c]
    const before = await counts(hosts)
    const [N, M, K] = [7, 3, 2]
    const ok = await curl(['-o', '/dev/null', '-w', '%{http_code}\n', '-H', 'x-canary: always', `http://10.96.0.20/pay/m/[1-${N}]`])
    const none = await curl(['-o', '/dev/null', '-w', '%{http_code}\n', `http://10.96.0.20/nothing/m/[1-${M}]`])
    const denied = await curl(['-o', '/dev/null', '-w', '%{http_code}\n', '-X', 'POST', `http://10.96.0.20/admin/m/[1-${K}]`])
    t.equal(ok.stdout, '200\n'.repeat(N))
    t.equal(none.stdout, '404\n'.repeat(M))
    t.equal(denied.stdout, '403\n'.repeat(K))
    // The source relays the destination's 403 as the response it is: its own flags are '-',
    // as an Envoy sidecar reports a denial by the server's sidecar. The destination, which
    // denied it, reports UAEX. A request with no route never leaves node-a.
    const expected = {
      'node-a source checkout payments-v2.shop payments-v2 200 -': N,
      'node-a source checkout payments.shop unknown 404 NR': M,
      'node-a source checkout payments-v1.shop payments-v1 403 -': K,
      'node-c destination checkout payments-v2.shop payments-v2 200 -': N,
      'node-b destination checkout payments-v1.shop payments-v1 403 UAEX': K,
    }
    const want = JSON.stringify(delta(expected, {}))
    let got: Record<string, number> = {}
    for (let i = 0; i < 20; i++) {
      got = delta(await counts(hosts), before)
      if (JSON.stringify(got) === want) break
      await sleep(100)
    }
    t.same(got, expected, 'istio_requests_total, by host, reporter, source, destination, response_code and response_flags')

    for (const [h, reporter] of [[a, 'source'], [c, 'destination']] as const) {
      const buckets = (await metrics(h)).filter((s) => s.name === 'istio_request_duration_milliseconds_bucket' && s.labels['reporter'] === reporter && s.labels['response_code'] === '200' && s.labels['destination_workload'] === 'payments-v2')
      t.same(buckets.map((s) => s.labels['le']), ENVOY_LE, `${h.name}: istio_request_duration_milliseconds_bucket has Envoy's le values`)
      t.ok((buckets.at(-1)?.value ?? 0) >= N, `${h.name}: +Inf counts at least the ${N} requests`)
    }
  })

  await t.test('a 90/10 split over 2,000 requests on one keep-alive connection lands per request', async (t) => {
    const r = await curl(['-o', '/dev/null', '-w', '%header{x-server} %{http_code} %{num_connects}\n', 'http://10.96.0.20/pay/split/[1-2000]'], 120_000)
    const lines = r.stdout.trim().split('\n')
    t.equal(lines.length, 2000, `2,000 responses: ${r.stderr}`)
    t.equal(lines.filter((l) => / 200 [01]$/.test(l)).length, 2000, 'all 200')
    t.equal(lines.reduce((n, l) => n + Number(l.split(' ')[2]), 0), 1, 'curl opened one connection for all of them')
    const v2n = lines.filter((l) => l.startsWith('payments-v2 ')).length
    const v1n = lines.filter((l) => l.startsWith('payments-v1 ')).length
    t.equal(v1n + v2n, 2000)
    // Binomial(2000, 0.1): sd 13.4 requests (0.67%); [6%, 14%] is ±6 sd.
    t.ok(v2n >= 120 && v2n <= 280, `payments-v2 got ${v2n} of 2000 (10% expected, 120..280 accepted)`)
    const pinned = await curl(['-o', '/dev/null', '-w', '%header{x-server}\n', '-H', 'x-canary: always', 'http://10.96.0.20/pay/pinned/[1-50]'])
    t.equal(pinned.stdout, 'payments-v2\n'.repeat(50), 'x-canary: always reaches v2, 50 of 50')
  })

  await t.test('a blue-green flip (100/0 → 0/100) during a wrk run: no errors, traffic moves within 1 s', async (t) => {
    const name = async (): Promise<string> => (await curl(['-o', '/dev/null', '-w', '%header{x-server}', 'http://10.96.0.20/pay/bg/probe'])).stdout
    t.equal(await name(), 'payments-v1', 'blue first')
    const wrk = a.exec(['wrk', '-t1', '-c8', '-d4s', 'http://10.96.0.20/pay/bg'], { uid: 2001, gid: 2001, timeoutMs: 30_000 })
    await sleep(1000)
    // As an operator should: write a temp file (a dotfile, which the loader skips), then rename.
    const tmp = join(policyDir, '.60-e2e.yaml.tmp')
    writeFileSync(tmp, EXTRA.replace(BLUE, GREEN))
    renameSync(tmp, join(policyDir, '60-e2e.yaml'))
    const flipped = performance.now()
    let movedMs = Infinity
    while (performance.now() - flipped < 3000) {
      if ((await name()) === 'payments-v2') {
        movedMs = performance.now() - flipped
        break
      }
      await sleep(50)
    }
    t.ok(movedMs <= 1000, `the first answer from v2 came ${Math.round(movedMs)} ms after the rename (at most 1000)`)
    const after = await curl(['-o', '/dev/null', '-w', '%header{x-server}\n', 'http://10.96.0.20/pay/bg/after/[1-20]'])
    t.equal(after.stdout, 'payments-v2\n'.repeat(20), 'green only, once moved')
    const w = await wrk
    t.equal(w.code, 0, w.stderr)
    t.ok(await saw(v1, 'GET /pay/bg') && await saw(v2, 'GET /pay/bg'), 'wrk\'s requests reached blue, then green: the flip happened during the run')
    const total = Number(/(\d+) requests in/.exec(w.stdout)?.[1] ?? 0)
    t.ok(total > 100, `wrk sent ${total} requests`)
    t.notMatch(w.stdout, /Non-2xx or 3xx responses/, `0 non-2xx responses:\n${w.stdout}`)
    t.notMatch(w.stdout, /Socket errors/, `0 socket errors:\n${w.stdout}`)
  })
})
