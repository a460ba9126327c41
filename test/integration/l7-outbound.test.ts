// The source host's request path (daemon/l7/outbound.ts), in process: the real OutboundHttp
// with a snapshot from the real policy pipeline, a real Balancer, real telemetry, and Services
// whose explicit endpoints are local origins (outside the mesh: plain TCP, no HBONE). Each
// downstream connection is accepted by a TCP listener and handed to outbound.serve() as the
// outbound listener would, for the service port the workload dialled. Covered: routing and its
// failures (no route, no backend, no endpoint, unreachable endpoints, a port gone from the
// policy, no policy at all), every HTTPRoute filter, per-request weighted splits, gRPC's
// trailers-only answers, protocol detection, and what admit() refuses.
import http from 'node:http'
import http2 from 'node:http2'
import t, { type Test } from 'tap'
import type { OutboundConn } from '../../daemon/l7/outbound-conn.ts'
import { OutboundHttp } from '../../daemon/l7/outbound.ts'
import { TunnelError } from '../../daemon/tunnel/client-pool.ts'
import type { Protocol, Snapshot } from '../../policy/snapshot.ts'
import { until } from '../helpers/admin.ts'
import { freePort } from '../helpers/ports.ts'
import { closed, compile, front, h1, h2, h2session, origin, outboundHttp, readUntil, tcp, tcpEndpoint, telemetry, type Front, type Telemetry, V, within } from './l7-harness.ts'

const UF = 'upstream connect error or disconnect/reset before headers\n'

const a = await origin(t, 'a')
const b = await origin(t, 'b')
// Ports nothing on a test machine listens on (a free port picked now could be taken by another
// test file's server before it is dialled, which then answers instead of refusing).
const dead = [1, 2]
const refusedPort = await freePort()
const svc = (name: string, ip: string | undefined, port: string, eps: string): string =>
  `${V}kind: Service\nmetadata: {name: ${name}, namespace: t}\nspec: {${ip ? `addresses: [${ip}], ` : ''}ports: [${port}], ${eps}}\n`
const at = (...ports: number[]): string => `endpoints: [${ports.map((p) => `{address: 127.0.0.1, port: ${p}}`).join(', ')}]`
const HTTP80 = '{name: http, port: 80, protocol: http}'
const snapshot: Snapshot = compile([
  `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [127.0.0.1]}\n`,
  `${V}kind: Workload\nmetadata: {name: client, namespace: t}\nspec: {node: node-a, serviceAccount: client, match: {uid: 5002}}\n`,
  `${V}kind: Workload\nmetadata: {name: other, namespace: t, labels: {app: other}}\nspec: {node: node-a, serviceAccount: other, match: {uid: 5003}}\n`,
  svc('a', undefined, HTTP80, at(a.port)),
  svc('b', undefined, HTTP80, at(b.port)),
  svc('dead', undefined, HTTP80, at(...dead)),
  // A selector no workload has a port for: no endpoints at all.
  svc('empty', undefined, '{name: http, port: 80, protocol: http, targetPort: 8080}', 'selector: {app: nobody}'),
  svc('web', '10.96.0.1', HTTP80, at(a.port)),
  // A mesh workload (reached here over plain TCP: connect stands in for the HBONE pool).
  `${V}kind: Workload\nmetadata: {name: meshy, namespace: t, labels: {app: meshy, version: v2}}\nspec: {node: node-a, serviceAccount: meshy, match: {uid: 5004}, addresses: [127.0.0.1], ports: [{name: http, port: ${a.port}}]}\n`,
  svc('mesh', undefined, '{name: http, port: 80, protocol: http, targetPort: http}', 'selector: {app: meshy}'),
  // Its endpoint's destination refuses the tunnel (the HBONE CONNECT gets 401).
  svc('refused', undefined, HTTP80, at(refusedPort)),
  svc('plain', '10.96.0.2', HTTP80, at(a.port)),
  svc('tcpsplit', '10.96.0.3', HTTP80, at(a.port)),
  svc('grpc', '10.96.0.4', '{name: grpc, port: 9000, protocol: grpc}', at(a.port)),
  svc('h2only', '10.96.0.5', '{name: h2, port: 81, protocol: http2}', at(a.port)),
  `${V}kind: HTTPRoute
metadata: {name: web, namespace: t}
spec:
  parentRefs: [{name: web}]
  rules:
    - name: root
      matches: [{path: {type: Exact, value: /}}]
      backendRefs: [{name: a, port: 80}]
    - name: moved
      matches: [{path: {type: PathPrefix, value: /old}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {path: {type: ReplacePrefixMatch, replacePrefixMatch: /new}, statusCode: 301}
    - name: rewrite
      matches: [{path: {type: PathPrefix, value: /legacy}}]
      filters:
        - type: URLRewrite
          urlRewrite: {hostname: rewritten.example, path: {type: ReplacePrefixMatch, replacePrefixMatch: /modern}}
        - type: RequestHeaderModifier
          requestHeaderModifier: {set: [{name: x-env, value: test}], add: [{name: x-add, value: two}], remove: [x-debug]}
        - type: ResponseHeaderModifier
          responseHeaderModifier: {set: [{name: x-mesh, value: hostmesh}], remove: [x-server]}
      backendRefs: [{name: a, port: 80}]
    - name: split
      matches: [{path: {type: PathPrefix, value: /split}}]
      backendRefs: [{name: a, port: 80, weight: 50}, {name: b, port: 80, weight: 50}]
    - name: nobackend
      matches: [{path: {type: PathPrefix, value: /nobackend}}]
    - name: dead
      matches: [{path: {type: PathPrefix, value: /dead}}]
      backendRefs: [{name: dead, port: 80}]
    - name: empty
      matches: [{path: {type: PathPrefix, value: /empty}}]
      backendRefs: [{name: empty, port: 80}]
    - name: admin
      matches: [{path: {type: PathPrefix, value: /admin}}]
      backendRefs: [{name: b, port: 80}]
    - name: exact-moved
      matches: [{path: {type: Exact, value: /exact-moved}}]
      filters:
        - type: RequestRedirect
          requestRedirect: {hostname: other.example, scheme: https}
    - name: canary
      matches: [{path: {type: PathPrefix, value: /hdr}, headers: [{name: x-canary, value: "yes"}]}]
      backendRefs: [{name: b, port: 80}]
    - name: mesh
      matches: [{path: {type: PathPrefix, value: /mesh}}]
      backendRefs: [{name: mesh, port: 80}]
    - name: refused
      matches: [{path: {type: PathPrefix, value: /refused}}]
      backendRefs: [{name: refused, port: 80}]
    - name: by-host
      matches: [{path: {type: PathPrefix, value: /by-host}, headers: [{name: Host, value: special.t}]}]
      backendRefs: [{name: b, port: 80}]
`,
  `${V}kind: HTTPRoute\nmetadata: {name: greeter, namespace: t}\nspec:\n  parentRefs: [{name: grpc}]\n  rules:\n    - matches: [{path: {type: PathPrefix, value: /pkg.Greeter}}]\n      backendRefs: [{name: a, port: 80}]\n`,
  `${V}kind: TCPRoute\nmetadata: {name: tcpsplit, namespace: t}\nspec:\n  parentRefs: [{name: tcpsplit, port: 80}]\n  rules:\n    - backendRefs: [{name: b, port: 80}]\n`,
])
const client = snapshot.workloads.get('t/client')!

interface Rig {
  readonly outbound: OutboundHttp
  readonly tel: Telemetry
  /** A listener whose connections are t/client's to `servicePort` (dialled at `dialled`). */
  front(servicePort: string, dialled: string, protocol: Protocol): Promise<Front>
}

async function rig(t: Test, snap: () => Snapshot | undefined = () => snapshot): Promise<Rig> {
  const tel = telemetry()
  // Endpoints outside the mesh: plain TCP, as the daemon's connect does for them; what the
  // HBONE pool throws when the destination refuses the CONNECT.
  const outbound = outboundHttp(t, snap, tel, (source, ep) => ep.port === refusedPort
    ? Promise.reject(new TunnelError(`CONNECT 127.0.0.1:${ep.port} via 127.0.0.1:15008: 401`, 401))
    : tcpEndpoint(source, ep))
  const connOf = (servicePort: string, dialled: string): OutboundConn => ({ source: client, servicePort, clientAddress: '127.0.0.1', dialled })
  return { outbound, tel, front: (sp, dialled, protocol) => front(t, (s) => outbound.serve(s, connOf(sp, dialled), protocol)) }
}

const main = await rig(t)
const { tel } = main
const web = await main.front('t/web:80', '10.96.0.1:80', 'http')
const grpcFront = await main.front('t/grpc:9000', '10.96.0.4:9000', 'grpc')

type Echo = { name: string; version: string; method: string; url: string; headers: Record<string, string> }
const echo = (body: string): Echo => JSON.parse(body) as Echo

function agent(t: Test): http.Agent {
  const ag = new http.Agent({ keepAlive: true, maxSockets: 1 })
  t.teardown(() => ag.destroy())
  return ag
}

t.test('a request no rule matches: 404 NR', async (t) => {
  const mark = tel.access().length
  const r = await h1(web.port, false, { path: '/nothing/here', headers: { host: 'web.t' } })
  t.equal(r.status, 404)
  t.equal(r.body, 'no route matched\n')
  const [line] = await tel.accessSince(mark, 1)
  t.match(line, { access: 'http', reporter: 'source', listener: 'outbound', status: 404, responseFlags: 'NR', route: null, upstream: null, dst: { service: 'web.t', address: '10.96.0.1:80' }, src: { workload: 'client', address: '127.0.0.1' } })
  t.equal(await tel.requestsTotal({ reporter: 'source', response_code: '404', response_flags: 'NR', destination_service: 'web.t' }), 1)
})

t.test('a rule with no backends: 500', async (t) => {
  const mark = tel.access().length
  const r = await h1(web.port, false, { path: '/nobackend', headers: { host: 'web.t' } })
  t.equal(r.status, 500)
  t.equal(r.body, 'the route rule has no valid backends\n')
  const [line] = await tel.accessSince(mark, 1)
  t.match(line, { status: 500, responseFlags: '-', route: 't/web', rule: 4 })
})

t.test('RequestRedirect: 301 with Location built from the request', async (t) => {
  const cases: Array<[string, string]> = [
    ['web.t', 'http://web.t/new/page?x=1'],
    ['web.t:8080', 'http://web.t:8080/new/page?x=1'],
    ['[fd00::1]:8080', 'http://[fd00::1]:8080/new/page?x=1'],
  ]
  for (const [host, location] of cases) {
    const r = await h1(web.port, false, { path: '/old/page?x=1', headers: { host } })
    t.equal(r.status, 301, host)
    t.equal(r.headers.location, location, host)
  }
  t.equal(a.seen('/old').length + a.seen('/new').length, 0, 'no origin saw it')
})

t.test('URLRewrite and RequestHeaderModifier change what the origin gets; ResponseHeaderModifier what the client gets', async (t) => {
  const r = await h1(web.port, false, { path: '/legacy/thing?q=2', headers: { host: 'web.t', 'x-debug': '1', 'x-add': 'one', 'x-env': 'prod' } })
  t.equal(r.status, 200)
  const got = echo(r.body)
  t.equal(got.name, 'a')
  t.equal(got.url, '/modern/thing?q=2', 'the prefix rewritten, the query kept')
  t.equal(got.headers.host, 'rewritten.example')
  t.equal(got.headers['x-env'], 'test', 'set replaces')
  t.equal(got.headers['x-add'], 'one,two', 'add appends')
  t.notOk('x-debug' in got.headers, 'remove removes')
  t.equal(got.headers['x-forwarded-for'], '127.0.0.1', 'the client\'s address in XFF')
  t.notOk('traceparent' in got.headers, 'no trace created when traceparent is off')
  t.equal(r.headers['x-mesh'], 'hostmesh')
  t.notOk('x-server' in r.headers, 'removed from the response')
  t.equal(r.headers['x-origin-only'], 'o', 'other response fields kept')

  // The same rule over HTTP/2 (prior knowledge on an http port).
  const s = await h2session(t, web.port)
  const r2 = await h2(s, { ':path': '/legacy', ':authority': 'web.t', 'x-debug': '1' })
  t.equal(r2.headers[':status'], 200)
  const got2 = echo(r2.body)
  t.equal(got2.version, '2', 'HTTP/2 prior knowledge on an http port is sniffed and forwarded as HTTP/2')
  t.equal(got2.url, '/modern')
  t.equal(got2.headers[':authority'], 'rewritten.example')
  t.equal(r2.headers['x-mesh'], 'hostmesh')
  t.notOk('x-server' in r2.headers)
})

t.test('weighted backends are chosen per request, on one keep-alive connection', async (t) => {
  const mark = tel.access().length
  const ag = agent(t)
  const accepted = web.accepted
  const names: Record<string, number> = {}
  for (let i = 0; i < 200; i++) {
    const r = await h1(web.port, ag, { path: `/split/${i}`, headers: { host: 'web.t' } })
    const n = echo(r.body).name
    names[n] = (names[n] ?? 0) + 1
  }
  t.equal(web.accepted - accepted, 1, 'one downstream connection')
  t.equal((names.a ?? 0) + (names.b ?? 0), 200)
  t.ok((names.a ?? 0) > 40 && (names.b ?? 0) > 40, `both backends get a share (${JSON.stringify(names)})`)
  const lines = await tel.accessSince(mark, 200)
  const services = new Set(lines.map((l) => (l.dst as { service: string }).service))
  t.same([...services].sort(), ['a.t', 'b.t'], 'the log names the backend service of each request')
  t.match(lines[0], { route: 't/web', rule: 3, upstream: /^127\.0\.0\.1:\d+$/, security: 'none' })
})

t.test('endpoints that cannot be reached: 503 UF; none at all: 503 UH', async (t) => {
  const mark = tel.access().length
  const r = await h1(web.port, false, { path: '/dead', headers: { host: 'web.t' } })
  t.equal(r.status, 503)
  t.equal(r.body, UF)
  const e = await h1(web.port, false, { path: '/empty', headers: { host: 'web.t' } })
  t.equal(e.status, 503)
  t.equal(e.body, 'no healthy upstream\n')
  const lines = await tel.accessSince(mark, 2)
  t.match(lines[0], { status: 503, responseFlags: 'UF', error: /ECONNREFUSED/, dst: { service: 'dead.t' } })
  t.ok(dead.map((p) => `127.0.0.1:${p}`).includes(String(lines[0]?.upstream)), 'one of the dead endpoints was tried')
  t.match(lines[1], { status: 503, responseFlags: 'UH', upstream: null, dst: { service: 'empty.t' } })
})

t.test('gRPC: routed calls reach the origin; a call no rule matches gets UNIMPLEMENTED, trailers-only', async (t) => {
  const mark = tel.access().length
  const s = await h2session(t, grpcFront.port)
  const call = { ':method': 'POST', 'content-type': 'application/grpc', te: 'trailers', ':authority': 'grpc.t:9000' }
  const miss = await h2(s, { ...call, ':path': '/other.Svc/Method' }, Buffer.from([0, 0, 0, 0, 0]))
  t.equal(miss.headers[':status'], 200)
  t.equal(miss.headers['grpc-status'], '12')
  t.equal(miss.headers['grpc-message'], 'no route matched')
  t.ok(miss.endStream, 'the head ends the stream')
  const hit = await h2(s, { ...call, ':path': '/pkg.Greeter/Hello' }, Buffer.from([0, 0, 0, 0, 0]))
  t.equal(hit.headers[':status'], 200)
  t.equal(echo(hit.body).url, '/pkg.Greeter/Hello')
  t.equal(echo(hit.body).headers.te, 'trailers')
  const lines = await tel.accessSince(mark, 2)
  t.match(lines[0], { protocol: 'grpc', status: 200, grpcStatus: 12, responseFlags: 'NR' })
  t.match(lines[1], { protocol: 'grpc', status: 200, route: 't/greeter' })
  t.equal(await tel.requestsTotal({ request_protocol: 'grpc', grpc_response_status: '12', response_flags: 'NR' }), 1)
})

t.test('a port without an HTTPRoute goes to its own endpoints; with a TCPRoute, to its backends per request', async (t) => {
  const plain = await main.front('t/plain:80', '10.96.0.2:80', 'http')
  const r = await h1(plain.port, false, { path: '/anything', headers: { host: 'plain.t' } })
  t.equal(echo(r.body).name, 'a')
  const split = await main.front('t/tcpsplit:80', '10.96.0.3:80', 'http')
  const ag = agent(t)
  for (let i = 0; i < 3; i++) t.equal(echo((await h1(split.port, ag, { path: '/x', headers: { host: 'tcpsplit.t' } })).body).name, 'b')
})

t.test('an absolute-form target: routed by its path, not by a "/" in its query', async (t) => {
  const s = await tcp(web.port)
  t.teardown(() => s.destroy())
  s.write('GET http://web.t?next=/admin HTTP/1.1\r\nHost: web.t\r\n\r\n')
  const text = await readUntil(s, (x) => x.endsWith('}'))
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/)
  const got = echo(text.slice(text.indexOf('\r\n\r\n') + 4))
  t.equal(got.name, 'a', 'the rule for /, not /admin')
  t.equal(got.url, '/?next=/admin')
})

t.test('what the front and admit() refuse', async (t) => {
  // Not HTTP/2 on an http2 port: 400, the connection closed.
  const h2only = await main.front('t/h2only:81', '10.96.0.5:81', 'http2')
  const s = await tcp(h2only.port)
  t.teardown(() => s.destroy())
  s.write('GET / HTTP/1.1\r\nHost: h2only.t\r\n\r\n')
  const text = await readUntil(s, (x) => x.includes('\r\n\r\n'))
  t.match(text, /^HTTP\/1\.1 400 Bad Request\r\n/)
  await closed(s)
  // Not HTTP at all on an http port: node's parser answers 400.
  const g = await tcp(web.port)
  t.teardown(() => g.destroy())
  g.write('\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03 not http\r\n\r\n')
  t.match(await readUntil(g, (x) => x.includes('\r\n\r\n')), /^HTTP\/1\.1 400 Bad Request\r\n/)
  await closed(g)
  await until(() => tel.lines().filter((l) => l.msg === 'request refused before the pipeline').length >= 2, 'both refusals logged', 3000, 10)
  t.match(tel.lines().filter((l) => l.msg === 'request refused before the pipeline'), [{ status: 400, workload: 't/client' }, { status: 400, workload: 't/client' }])

  const mark = tel.access().length
  const session = await h2session(t, web.port)
  const conflicting = await h2(session, { ':path': '/', ':authority': 'web.t', host: 'evil.example' })
  t.equal(conflicting.headers[':status'], 400)
  t.equal(conflicting.body, 'missing or conflicting authority\n')
  const many: Record<string, string> = {}
  for (let i = 0; i < 110; i++) many[`x-h${i}`] = 'v'
  const tooMany = await h2(session, { ':path': '/', ':authority': 'web.t', ...many })
  t.equal(tooMany.headers[':status'], 431)
  const connect = await new Promise<number>((resolve, reject) => {
    const st = session.request({ ':method': 'CONNECT', ':authority': 'web.t:443' })
    st.on('response', (h) => resolve(Number(h[':status'])))
    st.on('error', reject)
  })
  t.equal(connect, 405)
  const lines = await tel.accessSince(mark, 3)
  t.same(lines.map((l) => l.status), [400, 431, 405])
  t.equal(a.seen('/').filter((r) => r.url === '/' && r.version === '2').length, 0, 'none reached an origin')
})

t.test('a service port gone from the policy: 404 NR; no policy yet: 503', async (t) => {
  const gone = await main.front('t/gone:80', '10.96.0.9:80', 'http')
  const r = await h1(gone.port, false, { path: '/', headers: { host: 'gone.t' } })
  t.equal(r.status, 404)
  t.equal(r.body, 'no route: t/gone:80 is no longer in the policy\n')

  const empty = await rig(t, () => undefined)
  const f = await empty.front('t/web:80', '10.96.0.1:80', 'http')
  const n = await h1(f.port, false, { path: '/', headers: { host: 'web.t' } })
  t.equal(n.status, 503)
  t.equal(n.body, 'no policy loaded yet\n')
  const [line] = await empty.tel.accessSince(0, 1)
  t.match(line, { status: 503, responseFlags: 'NR', reporter: 'source' })
})

t.test('drain: idle connections close, HTTP/2 sessions get GOAWAY; destroy ends the rest', async (t) => {
  const r = await rig(t)
  const f = await r.front('t/web:80', '10.96.0.1:80', 'http')
  const idle = await tcp(f.port)
  t.teardown(() => idle.destroy())
  idle.write('GET / HTTP/1.1\r\nHost: web.t\r\n\r\n')
  await readUntil(idle, (x) => x.endsWith('}'))
  const session = await h2session(t, f.port)
  t.equal((await h2(session, { ':path': '/', ':authority': 'web.t' })).headers[':status'], 200)
  const goaway = new Promise<void>((resolve) => session.once('goaway', () => resolve()))
  t.equal(r.outbound.connections, 2)
  r.outbound.drain()
  await closed(idle)
  await goaway
  t.pass('closed and GOAWAY')

  // A connection that arrives after the drain began: HTTP/2 gets GOAWAY at once.
  const late = http2.connect(`http://127.0.0.1:${f.port}`)
  late.on('error', () => undefined)
  t.teardown(() => { late.destroy() })
  await new Promise<void>((resolve) => late.once('goaway', () => resolve()))
  t.pass('a session opened during the drain gets GOAWAY')

  const plain = await r.front('t/plain:80', '10.96.0.2:80', 'http')
  const open = await tcp(plain.port)
  t.teardown(() => open.destroy())
  open.write('GET /gate/destroy HTTP/1.1\r\nHost: plain.t\r\n\r\n')
  await until(() => a.seen('/gate/destroy').length === 1, 'the gated request to arrive', 3000, 10)
  r.outbound.destroy()
  await closed(open)
  t.pass('destroy() closes connections with requests in flight')
})

t.test('a redirect on an Exact match, to another scheme and host', async (t) => {
  const r = await h1(web.port, false, { path: '/exact-moved?a=b', headers: { host: 'web.t:8080' } })
  t.equal(r.status, 302, 'the default status')
  t.equal(r.headers.location, 'https://other.example/exact-moved?a=b', 'the scheme\'s port, left out')
})

t.test('header matches: the rule applies only with the header', async (t) => {
  const yes = await h1(web.port, false, { path: '/hdr', headers: { host: 'web.t', 'x-canary': 'yes' } })
  t.equal(echo(yes.body).name, 'b')
  const no = await h1(web.port, false, { path: '/hdr', headers: { host: 'web.t', 'x-canary': 'no' } })
  t.equal(no.status, 404)
  t.equal(echo((await h1(web.port, false, { path: '/by-host', headers: { host: 'special.t' } })).body).name, 'b', 'Host is matched as the authority')
  const s = await h2session(t, web.port)
  t.equal(echo((await h2(s, { ':path': '/by-host', ':authority': 'special.t' })).body).name, 'b', 'so is :authority')
  t.equal((await h1(web.port, false, { path: '/by-host', headers: { host: 'web.t' } })).status, 404)
})

t.test('a mesh endpoint: the record names its workload, identity and version', async (t) => {
  const mark = tel.access().length
  const r = await h1(web.port, false, { path: '/mesh', headers: { host: 'web.t' } })
  t.equal(r.status, 200)
  const [line] = await tel.accessSince(mark, 1)
  t.match(line, { status: 200, security: 'mutual_tls', dst: { service: 'mesh.t', workload: 'meshy', namespace: 't', principal: 'spiffe://cluster.local/ns/t/sa/meshy', version: 'v2' } })
})

t.test('the destination refuses the tunnel: 403 RBAC: access denied (UAEX)', async (t) => {
  const mark = tel.access().length
  const r = await h1(web.port, false, { path: '/refused', headers: { host: 'web.t' } })
  t.equal(r.status, 403)
  t.equal(r.body, 'RBAC: access denied\n')
  const [line] = await tel.accessSince(mark, 1)
  t.match(line, { status: 403, responseFlags: 'UAEX', error: /401/ })
})

t.test('the HTTP/2 preface split across reads is still recognised; a near miss is HTTP/1.1', async (t) => {
  const s = await tcp(web.port)
  t.teardown(() => s.destroy())
  s.write('PRI * HTTP/2.0\r\n')
  await new Promise((r) => setTimeout(r, 30))
  s.write('\r\nSM\r\n\r\n')
  await new Promise((r) => setTimeout(r, 30))
  s.write(Buffer.from([0, 0, 0, 4, 0, 0, 0, 0, 0])) // an empty SETTINGS frame
  const frame = await within(new Promise<Buffer>((resolve) => s.once('data', (c: Buffer) => resolve(c))), 3000, 'the server\'s first frame')
  t.equal(frame[3], 4, 'the server answers with SETTINGS: HTTP/2')

  const near = await tcp(web.port)
  t.teardown(() => near.destroy())
  near.write('PRI * HTTP/2.0\r\n')
  await new Promise((r) => setTimeout(r, 30))
  near.write('\r\nXX\r\n\r\n')
  t.match(await readUntil(near, (x) => x.includes('\r\n\r\n')), /^HTTP\/1\.1 400 Bad Request\r\n/, 'HTTP/1.1\'s parser refuses it')
})

t.test('HTTP/1.0 without Host: the request is for the address the client dialled', async (t) => {
  const s = await tcp(web.port)
  t.teardown(() => s.destroy())
  s.write('GET / HTTP/1.0\r\n\r\n')
  const text = await readUntil(s, (x) => x.endsWith('}'))
  t.match(text, /^HTTP\/1\.1 200 OK\r\n/)
  t.equal(echo(text.slice(text.indexOf('\r\n\r\n') + 4)).headers.host, '10.96.0.1:80')
})
