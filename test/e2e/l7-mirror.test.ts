// HTTPRoute's RequestMirror filter on two real hosts: client (uid 2001, node-a) calls backend
// (node-b, the workload server) through routes that mirror every request to a shadow service
// on node-b that answers after 5 s, or to one whose port nobody listens on. The originals'
// statuses and p99 latency stay those of a route without a mirror; the shadow receives each
// copy with `-shadow` on its Host and the same body (not one past 64 KiB); node-a's
// hostmesh_mirror_requests_total counts what became of the copies.
//   node-a  client (uid 2001): curl, http-load.ts
//   node-b  backend (uid 2002): the workload server on 8080
//           shadow (uid 2003): a server of this file's own on 8090 that prints each request
//           (method, target, Host, body length and sha256) and answers 5 s later; nothing on 8091
import { createHash } from 'node:crypto'
import { chmodSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import type { LoadOutput as Load, Result as LoadResult } from '../../scripts/netns/workloads/http-load.ts'
import type { ServerStats } from '../../scripts/netns/workloads/http-server.ts'
import { percentile } from '../../scripts/bench/stats.ts'
import { testNet, type HostProcess, type RunAs, type TestHost } from '../../scripts/netns/hosts.ts'
import { parseMetrics, total, type Sample } from '../../scripts/demo/telemetry.ts'
import { e2eSkip } from '../helpers/e2e.ts'
import { startMesh } from '../helpers/mesh-e2e.ts'

const SERVER = new URL('../../scripts/netns/workloads/http-server.ts', import.meta.url).pathname
const LOAD = new URL('../../scripts/netns/workloads/http-load.ts', import.meta.url).pathname
const NODE = process.execPath
const CLIENT: RunAs = { uid: 2001, gid: 2001 }
const BACKEND: RunAs = { uid: 2002, gid: 2002 }
const SHADOW: RunAs = { uid: 2003, gid: 2003 }
const VIP = { backend: '10.96.3.10', shadow: '10.96.3.11', down: '10.96.3.12' } as const
const SLOW_MS = 5000

// The hosts' Node documents come from startMesh().
const POLICY = `apiVersion: hostmesh.io/v1alpha1
kind: Workload
metadata: {name: client, namespace: mir, labels: {app: client}}
spec: {node: node-a, serviceAccount: client, match: {uid: 2001}}
---
apiVersion: hostmesh.io/v1alpha1
kind: Workload
metadata: {name: backend, namespace: mir, labels: {app: backend}}
spec: {node: node-b, serviceAccount: backend, match: {uid: 2002}, ports: [{name: http, port: 8080}]}
---
apiVersion: hostmesh.io/v1alpha1
kind: Workload
metadata: {name: shadow, namespace: mir, labels: {app: shadow}}
spec: {node: node-b, serviceAccount: shadow, match: {uid: 2003}, ports: [{name: http, port: 8090}, {name: down, port: 8091}]}
---
apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: backend, namespace: mir}
spec: {addresses: [${VIP.backend}], ports: [{port: 80, protocol: http, targetPort: 8080}], selector: {app: backend}}
---
apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: shadow, namespace: mir}
spec: {addresses: [${VIP.shadow}], ports: [{port: 80, protocol: http, targetPort: 8090}], selector: {app: shadow}}
---
apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: shadow-down, namespace: mir}
spec: {addresses: [${VIP.down}], ports: [{port: 80, protocol: http, targetPort: 8091}], selector: {app: shadow}}
---
apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: backend, namespace: mir}
spec:
  parentRefs: [{name: backend, port: 80}]
  rules:
    - name: slow-mirror
      matches: [{path: {type: PathPrefix, value: /mirror/slow}}]
      filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow, port: 80}}}]
      backendRefs: [{name: backend, port: 80}]
    - name: down-mirror
      matches: [{path: {type: PathPrefix, value: /mirror/down}}]
      filters: [{type: RequestMirror, requestMirror: {backendRef: {name: shadow-down, port: 80}}}]
      backendRefs: [{name: backend, port: 80}]
    - name: plain
      backendRefs: [{name: backend, port: 80}]
`

/** The shadow: prints `SHADOW {json}` for each request once its body is in, answers DELAY ms later. */
const SHADOW_SERVER = `import http from 'node:http'
import { createHash } from 'node:crypto'
const [port, delay] = [Number(process.argv[2]), Number(process.argv[3])]
const server = http.createServer((req, res) => {
  const hash = createHash('sha256')
  let bytes = 0
  req.on('data', (c) => { bytes += c.length; hash.update(c) })
  req.on('end', () => {
    process.stdout.write('SHADOW ' + JSON.stringify({ method: req.method, url: req.url, host: req.headers.host, bytes, sha256: hash.digest('hex') }) + '\\n')
    setTimeout(() => { res.writeHead(200, { 'content-type': 'text/plain' }); res.end('shadow\\n') }, delay)
  })
})
server.keepAliveTimeout = 60000
server.listen({ host: '::', port, ipv6Only: false }, () => process.stdout.write('listening ' + port + '\\n'))
process.on('SIGTERM', () => process.exit(0))
`

interface Copy { method: string; url: string; host: string; bytes: number; sha256: string }

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
/** The copies the shadow printed. */
const copies = (p: HostProcess): Copy[] => p.output.split('\n').filter((l) => l.startsWith('SHADOW ')).map((l) => JSON.parse(l.slice(7)) as Copy)

t.test('RequestMirror through the mesh', { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: ['node-a', 'node-b'] })
  const mesh = await startMesh(t, net, 'l7-mirror', POLICY)
  const { dir } = mesh
  const shadowScript = join(dir, 'shadow-server.mjs')
  writeFileSync(shadowScript, SHADOW_SERVER)
  chmodSync(shadowScript, 0o644)
  const [a, b] = [net.host('node-a'), net.host('node-b')]
  const backend = b.spawn([NODE, SERVER, 'backend', '8080'], BACKEND)
  const shadow = b.spawn([NODE, shadowScript, '8090', String(SLOW_MS)], SHADOW)
  await backend.waitFor(/listening/)
  await shadow.waitFor(/listening/)

  const curl = (args: string[]) => a.exec(['curl', '-sS', '-m', '10', ...args], { ...CLIENT, timeoutMs: 20_000 })
  const load = async (opts: Record<string, unknown>): Promise<Load> => {
    const r = await a.exec([NODE, LOAD, JSON.stringify(opts)], { ...CLIENT, timeoutMs: 60_000 })
    if (r.code !== 0) throw new Error(`http-load failed (exit ${r.code}): ${r.stderr}`)
    return JSON.parse(r.stdout) as Load
  }
  const metrics = async (h: TestHost): Promise<Sample[]> => parseMetrics((await h.exec(['curl', '-sS', '-m', '2', 'http://127.0.0.1:15000/metrics'])).stdout)
  const mirrored = async (service: string, result: string): Promise<number> => total(await metrics(a), 'hostmesh_mirror_requests_total', { destination_service: service, result })
  /** The backend's counters, from inside node-b as root: not in the mesh. */
  const stats = async (): Promise<ServerStats> => JSON.parse((await b.exec(['curl', '-sS', '-m', '2', 'http://127.0.0.1:8080/_stats'])).stdout) as ServerStats
  const untilCount = async (what: () => Promise<number>, want: number, ms: number): Promise<number> => {
    let n = await what()
    for (const deadline = Date.now() + ms; n < want && Date.now() < deadline; n = await what()) await sleep(200)
    return n
  }

  await t.test('the shadow gets each copy with -shadow on its Host and the same body, at once; not a body past 64 KiB', async (t) => {
    const body = 'amount=42&currency=EUR&note=mirrored'
    const t0 = performance.now()
    const r = await curl(['-o', '/dev/null', '-w', '%{http_code}', '--data-binary', body, `http://${VIP.backend}/mirror/slow/pay?id=7`])
    t.equal(r.stdout, '200', `the original is answered (${r.stderr})`)
    t.ok(performance.now() - t0 < SLOW_MS / 2, 'without waiting for the slow shadow')
    for (let i = 0; i < 50 && !copies(shadow).some((c) => c.url === '/mirror/slow/pay?id=7'); i++) await sleep(50)
    const copy = copies(shadow).find((c) => c.url === '/mirror/slow/pay?id=7')
    t.match(copy, { method: 'POST', host: `${VIP.backend}-shadow`, bytes: body.length, sha256: createHash('sha256').update(body).digest('hex') }, 'the copy: method, target, Host with -shadow, body')

    const l = await load({ url: `http://${VIP.backend}/mirror/slow/big`, method: 'POST', bodyBytes: 100 * 1024 })
    t.equal(l.results[0]?.status, 200, 'the 100 KiB POST is answered')
    const s = await stats()
    t.match(s.bodies.find((x) => x.path === '/mirror/slow/big'), { bytes: 100 * 1024, sha256: l.bodySha256 }, 'and reached the backend intact')
    await sleep(500)
    t.notOk(copies(shadow).some((c) => c.url.startsWith('/mirror/slow/big')), 'the shadow never got a copy of it')
    t.ok(await untilCount(() => mirrored('shadow.mir', 'dropped'), 1, 3000) >= 1, 'counted as dropped')
  })

  const N = 400
  const C = 10
  const run = async (path: string): Promise<LoadResult[]> => (await load({ url: `http://${VIP.backend}${path}`, n: N, concurrency: C })).results

  await t.test(`a shadow that answers after ${SLOW_MS / 1000} s, or one that is down, changes neither the originals' status nor their p99`, async (t) => {
    // Twice each, interleaved, so whatever else the machine does weighs on each alike. The
    // copies cost node-a's hostmesh some work, and other tests may load the machine: a bound
    // on the difference, and another measurement (after the copies in flight are answered)
    // when one is off. A pipeline that waited for the shadow would take 5 s every time.
    let attempts = 0
    for (;;) {
      attempts++
      const plain: LoadResult[] = []
      const slow: LoadResult[] = []
      const down: LoadResult[] = []
      for (const round of [1, 2]) {
        plain.push(...await run(`/plain/${attempts}/${round}`))
        slow.push(...await run(`/mirror/slow/${attempts}/${round}`))
        down.push(...await run(`/mirror/down/${attempts}/${round}`))
      }
      for (const [name, rs] of [['no mirror', plain], ['slow mirror', slow], ['mirror down', down]] as const) {
        t.same([...new Set(rs.map((r) => r.status))], [200], `${name}: every original answered 200 (${rs.find((r) => r.status !== 200)?.error ?? ''})`)
      }
      const slowest = Math.max(...slow.map((r) => r.ms))
      t.ok(slowest < SLOW_MS / 2, `no original waited for the shadow: slowest ${slowest.toFixed(1)} ms`)
      const p99 = { plain: percentile(plain.map((r) => r.ms), 0.99), slow: percentile(slow.map((r) => r.ms), 0.99), down: percentile(down.map((r) => r.ms), 0.99) }
      const bound = 2 * p99.plain + 50
      const line = `p99: no mirror ${p99.plain.toFixed(1)} ms, slow mirror ${p99.slow.toFixed(1)} ms, mirror down ${p99.down.toFixed(1)} ms (bound ${bound.toFixed(1)})`
      if ((p99.slow > bound || p99.down > bound) && attempts < 3) {
        t.comment(`measurement ${attempts} off, measuring again once the copies are answered: ${line}`)
        await sleep(SLOW_MS + 1000)
        continue
      }
      t.ok(p99.slow <= bound && p99.down <= bound, line)
      break
    }

    const want = attempts * 2 * N
    const slowCopies = (): Copy[] => copies(shadow).filter((c) => c.url.startsWith('/mirror/slow/') && !c.url.startsWith('/mirror/slow/pay') && !c.url.startsWith('/mirror/slow/big'))
    for (const deadline = Date.now() + 5000; slowCopies().length < want && Date.now() < deadline;) await sleep(100)
    const got = slowCopies()
    t.equal(got.length, want, 'the shadow printed each copy')
    t.ok(got.every((c) => c.host === `${VIP.backend}-shadow` && c.method === 'GET'), 'each with Host: <VIP>-shadow')
    // Every copy the shadow printed (this subtest's and the first's) is answered 5 s later.
    const printed = copies(shadow).length
    const sent = await untilCount(() => mirrored('shadow.mir', 'sent'), printed, SLOW_MS + 10_000)
    t.equal(sent, printed, `every copy to the slow shadow was answered and counted as sent (${sent} of ${printed})`)
    const failed = await untilCount(() => mirrored('shadow-down.mir', 'failed'), want, 10_000)
    t.equal(failed, want, 'every copy to the shadow that is down counted as failed (node-b\'s hostmesh answers them 503)')
    t.equal(await mirrored('shadow-down.mir', 'sent'), 0)
    const s = await stats()
    t.equal((s.byPath['/plain/1/1'] ?? 0) + (s.byPath['/mirror/slow/1/1'] ?? 0) + (s.byPath['/mirror/down/1/1'] ?? 0), 3 * N, 'the backend saw each original once')
  })
})
