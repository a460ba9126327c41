// gRPC through the mesh on three real hosts, @grpc/grpc-js on both ends: checkout (uid 2001,
// node-a) calls the Greeter at the VIP 10.96.0.50:50051 (a `grpc` Service port); an HTTPRoute
// sends `x-version: v2` to greeter-v2 (node-c) and everything else to greeter-v1 (node-b); the
// destination hostmesh authorizes each call by its path.
import { cpSync, mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { testNet, type HostProcess, type TestHost } from '../../scripts/netns/hosts.ts'
import { meshNodeConfigs, untilReady } from '../../scripts/netns/mesh-nodes.ts'
import { CLI } from '../helpers/cli.ts'
import { e2eSkip } from '../helpers/e2e.ts'
import { grpcWorkloads } from '../helpers/grpc-workloads.ts'

const ROOT = new URL('../../', import.meta.url).pathname
const EXAMPLES = join(ROOT, 'policy/examples')
const NODE = process.execPath
const VIP = '10.96.0.50:50051'
const CHECKOUT = { uid: 2001, gid: 2001 }
const PAYMENTS = { uid: 2002, gid: 2002 }
const XFCC = 'By=spiffe://cluster.local/ns/shop/sa/payments;URI=spiffe://cluster.local/ns/shop/sa/checkout'

// greeter-down: a port of the v1 workload nothing listens on, so the destination cannot connect.
const EXTRA = `apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: greeter, namespace: shop}
spec:
  addresses: [10.96.0.50]
  ports: [{name: grpc, port: 50051, protocol: grpc}]
  selector: {app: payments}
---
apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: greeter-v1, namespace: shop}
spec:
  ports: [{name: grpc, port: 50051, protocol: grpc}]
  selector: {app: payments, version: v1}
---
apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: greeter-v2, namespace: shop}
spec:
  ports: [{name: grpc, port: 50051, protocol: grpc}]
  selector: {app: payments, version: v2}
---
apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: greeter-down, namespace: shop}
spec:
  ports: [{name: grpc, port: 50051, protocol: grpc, targetPort: 50052}]
  selector: {app: payments, version: v1}
---
apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: greeter, namespace: shop}
spec:
  parentRefs: [{name: greeter, port: 50051}]
  rules:
    - name: v2
      matches: [{headers: [{name: x-version, value: v2}]}]
      backendRefs: [{name: greeter-v2, port: 50051}]
    - name: down
      matches: [{headers: [{name: x-version, value: down}]}]
      backendRefs: [{name: greeter-down, port: 50051}]
    - name: default
      backendRefs: [{name: greeter-v1, port: 50051}]
---
# ALLOW policies are OR'ed: this adds to payments-from-checkout. Forbidden is in no rule.
apiVersion: hostmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: greeter-from-checkout, namespace: shop}
spec:
  selector: {matchLabels: {app: payments}}
  action: ALLOW
  rules:
    - from: [{source: {principals: ["cluster.local/ns/shop/sa/checkout"]}}]
      to: [{operation: {ports: ["50051", "50052"], paths: ["/hello.Greeter/SayHello", "/hello.Greeter/Count*", "/hello.Greeter/Fail"]}}]
`

interface CallResult {
  readonly code: number
  readonly details: string
  readonly messages: readonly Record<string, unknown>[]
  readonly metadata: Record<string, unknown> | null
  readonly trailers: Record<string, unknown>
  readonly ms: number
}

t.test('gRPC through the mesh', { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: ['node-a', 'node-b', 'node-c'] })
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-l7-grpc-'))
  cpSync(EXAMPLES, join(dir, 'policy.d'), { recursive: true })
  writeFileSync(join(dir, 'policy.d', '60-e2e-grpc.yaml'), EXTRA)
  // The destination accepts tunnels only to ports its workloads declare.
  const workloads = join(dir, 'policy.d', '10-workloads.yaml')
  const declared = readFileSync(workloads, 'utf8')
  const withGrpc = declared.replaceAll('ports: [{name: http, port: 8080}, {name: ledger, port: 7000}]', 'ports: [{name: http, port: 8080}, {name: ledger, port: 7000}, {name: grpc, port: 50051}, {name: grpc-down, port: 50052}]')
  if (withGrpc.split('name: grpc,').length !== 3) throw new Error(`policy/examples/10-workloads.yaml changed: add the gRPC ports to payments-v1 and payments-v2 another way\n${declared}`)
  writeFileSync(workloads, withGrpc)
  const configs = await meshNodeConfigs(net.hosts, dir, { policyDir: join(dir, 'policy.d'), extra: 'drainSeconds: 1\n' })
  const daemons = new Map<string, HostProcess>()
  for (const h of net.hosts) daemons.set(h.name, h.spawn([NODE, CLI, 'run', '--config', configs.get(h.name)!]))
  await Promise.all(net.hosts.map((h) => untilReady(h, daemons.get(h.name)!)))
  const [a, b, c] = [net.host('node-a'), net.host('node-b'), net.host('node-c')]
  const bin = grpcWorkloads(t)
  const v1 = b.spawn([NODE, join(bin, 'grpc-server.ts'), 'greeter-v1', '50051'], PAYMENTS)
  const v2 = c.spawn([NODE, join(bin, 'grpc-server.ts'), 'greeter-v2', '50051'], PAYMENTS)
  await v1.waitFor(/listening/)
  await v2.waitFor(/listening/)
  t.teardown(() => {
    if (t.passing()) return
    for (const [name, d] of daemons) t.comment(`--- ${name}\n${d.output.slice(-2500)}`)
  })

  const call = async (method: string, request: object = {}, metadata: Record<string, string> = {}): Promise<CallResult> => {
    const r = await a.exec([NODE, join(bin, 'grpc-client.ts'), VIP, method, JSON.stringify(request), JSON.stringify(metadata), '8000'], { ...CHECKOUT, timeoutMs: 15_000 })
    const line = r.stdout.trim().split('\n').at(-1) ?? ''
    try {
      return JSON.parse(line) as CallResult
    } catch {
      throw new Error(`grpc-client printed no result (exit ${r.code}): ${r.stdout}${r.stderr}`)
    }
  }
  /** The x-forwarded-client-cert the server saw, from SayHello's echo of its metadata. */
  const xfccOf = (r: CallResult): unknown => (r.messages[0]?.metadata as Record<string, unknown> | undefined)?.['x-forwarded-client-cert']
  const handled = (p: HostProcess, method: string): number => p.output.split('\n').filter((l) => l === `REQ ${method}`).length

  await t.test('unary: routed by the x-version header, with the verified peer and no forged one', async (t) => {
    const forged = { 'x-forwarded-client-cert': 'By=spiffe://evil/x;URI=spiffe://cluster.local/ns/shop/sa/admin' }
    const [dflt, pinned] = await Promise.all([
      call('SayHello', { name: 'ann' }, forged),
      call('SayHello', { name: 'bob' }, { 'x-version': 'v2', ...forged }),
    ])
    t.equal(dflt.code, 0, `default route: OK (${dflt.details})`)
    t.match(dflt.messages, [{ server: 'greeter-v1', hello: 'ann' }])
    t.equal(xfccOf(dflt), XFCC, 'greeter-v1 saw only the verified peer')
    t.equal(pinned.code, 0, `x-version: v2: OK (${pinned.details})`)
    t.match(pinned.messages, [{ server: 'greeter-v2', hello: 'bob' }])
    t.equal(xfccOf(pinned), XFCC, 'greeter-v2 saw only the verified peer')
  })

  await t.test('server streaming: every message, from the version the header picks', async (t) => {
    const [dflt, pinned] = await Promise.all([call('Count', { n: 5 }), call('Count', { n: 7 }, { 'x-version': 'v2' })])
    t.equal(dflt.code, 0, `default: OK (${dflt.details})`)
    t.same(dflt.messages, [0, 1, 2, 3, 4].map((i) => ({ server: 'greeter-v1', i })))
    t.equal(pinned.code, 0, `v2: OK (${pinned.details})`)
    t.same(pinned.messages, [0, 1, 2, 3, 4, 5, 6].map((i) => ({ server: 'greeter-v2', i })))
  })

  await t.test('a server\'s error status and trailing metadata arrive intact', async (t) => {
    const r = await call('Fail', { code: 9, details: 'not ready yet' }, { 'x-version': 'v2' })
    t.equal(r.code, 9, 'FAILED_PRECONDITION')
    t.equal(r.details, 'not ready yet')
    t.equal(r.trailers['x-detail'], 'not ready yet', 'custom trailer')
    t.equal(r.trailers['x-server'], 'greeter-v2', 'from the routed server')
  })

  await t.test('a denied call is PERMISSION_DENIED from hostmesh, and the server never runs it', async (t) => {
    const before = handled(v1, 'Forbidden') + handled(v2, 'Forbidden')
    const [one, two] = await Promise.all([call('Forbidden'), call('Forbidden', {}, { 'x-version': 'v2' })])
    for (const r of [one, two]) {
      t.equal(r.code, 7, `PERMISSION_DENIED (${r.details})`)
      t.match(r.details, /RBAC: access denied/)
    }
    // The allowed calls on the same hosts still work afterwards.
    t.equal((await call('SayHello', { name: 'again' })).code, 0, 'an allowed call right after')
    t.equal(handled(v1, 'Forbidden') + handled(v2, 'Forbidden'), before, 'no server ran Forbidden')
  })

  await t.test('an unreachable backend is UNAVAILABLE, a gRPC status from hostmesh', async (t) => {
    const r = await call('SayHello', { name: 'nobody' }, { 'x-version': 'down' })
    t.equal(r.code, 14, `UNAVAILABLE (${r.details})`)
    t.match(r.details, /upstream connect error|no healthy upstream/, 'hostmesh\'s reason, not a client-side guess from an HTTP status')
    t.equal(r.messages.length, 0)
  })

  await t.test('an endpoint whose server stopped is UNAVAILABLE too', async (t) => {
    await v1.stop()
    const r = await call('SayHello', { name: 'late' })
    t.equal(r.code, 14, `UNAVAILABLE (${r.details})`)
    t.match(r.details, /upstream connect error|no healthy upstream/)
  })

  await t.test('request metrics say grpc, with the gRPC status, from both reporters', async (t) => {
    const metrics = async (h: TestHost) => (await h.exec(['curl', '-sS', '-m', '5', 'http://127.0.0.1:15000/metrics'])).stdout
    const lines = (text: string) => text.split('\n').filter((l) => l.startsWith('istio_requests_total{') && l.includes('request_protocol="grpc"'))
    const src = lines(await metrics(a))
    const dst = [...lines(await metrics(b)), ...lines(await metrics(c))]
    t.ok(src.some((l) => l.includes('reporter="source"') && l.includes('grpc_response_status="0"') && l.includes('response_code="200"')), 'source: OK calls')
    t.ok(src.some((l) => l.includes('grpc_response_status="9"')), 'source: FAILED_PRECONDITION')
    t.ok(src.some((l) => l.includes('grpc_response_status="7"')), 'source: PERMISSION_DENIED')
    t.ok(src.some((l) => l.includes('grpc_response_status="14"')), 'source: UNAVAILABLE')
    t.ok(dst.some((l) => l.includes('reporter="destination"') && l.includes('grpc_response_status="0"')), 'destination: OK calls')
    t.ok(dst.some((l) => l.includes('grpc_response_status="7"') && l.includes('response_flags="UAEX"')), 'destination: the denial, flagged UAEX')
    t.ok(dst.some((l) => l.includes('grpc_response_status="9"')), 'destination: FAILED_PRECONDITION')
    if (src.length === 0 || dst.length === 0) t.comment(`source:\n${src.join('\n')}\ndestination:\n${dst.join('\n')}`)
  })
})
