// The HBONE client pool and server against each other on loopback, in one process, with real
// TLS 1.3 + HTTP/2 and a real echo workload: data both ways (10 MB, half-close), 401 from
// AuthorizationPolicy, 400 for an authority that is no local workload, 503 when the workload
// is down, pooling, and revocation of an open tunnel by a new snapshot.
import t from 'tap'
import { splice } from '../../../daemon/tunnel/splice.ts'
import { hboneSetup as setup } from '../../helpers/hbone.ts'
import { tcpPair } from '../../helpers/ports.ts'

t.test('a tunnel carries 10 MB both ways and a half-close', async (t) => {
  const s = await setup(t)
  const stream = await s.open('client')
  const payload = Buffer.alloc(10 << 20, 7)
  payload.write('end-marker', payload.length - 10)
  const got: Buffer[] = []
  const ended = new Promise<void>((r) => stream.on('end', r))
  stream.on('data', (c: Buffer) => got.push(c))
  stream.end(payload)
  await ended
  const back = Buffer.concat(got)
  t.equal(back.length, payload.length, 'every byte came back')
  t.ok(back.equals(payload), 'unchanged')
  t.match(await s.registry.metrics(), /istio_tcp_connections_opened_total\{reporter="destination",source_workload="client",source_principal="spiffe:\/\/cluster\.local\/ns\/t\/sa\/client",destination_service="unknown",destination_workload="echo",destination_principal="spiffe:\/\/cluster\.local\/ns\/t\/sa\/echo",connection_security_policy="mutual_tls",response_flags="-"\} 1/)
})

t.test('401, 400 and 503 as ztunnel answers them', async (t) => {
  const s = await setup(t)
  await t.rejects(s.open('intruder'), { code: 'HOSTMESH_ERR_TUNNEL', status: 401 }, 'AuthorizationPolicy denies')
  await t.rejects(s.open('client', 9, '127.0.0.2'), { code: 'HOSTMESH_ERR_TUNNEL', status: 400 }, 'not a local workload address')
  await t.rejects(s.open('client', s.downPort), { code: 'HOSTMESH_ERR_TUNNEL', status: 503 }, 'workload port with nothing listening')
  t.match(await s.registry.metrics(), /istio_tcp_connections_closed_total\{[^}]*response_flags="UAEX"\} 1/)
})

t.test('sessions are pooled; a new snapshot closes a tunnel it denies', async (t) => {
  const s = await setup(t)
  const a = await s.open('client')
  const b = await s.open('client')
  t.equal(s.pool.sessions, 1, 'two tunnels, one session')
  t.equal(s.server.tunnels, 2)
  for (const x of [a, b]) x.on('error', () => undefined)
  const closed = new Promise((r) => a.once('close', r))
  const snap = await s.setSnapshot('intruder')
  t.equal(s.server.recheck(snap), 2, 'both tunnels revoked')
  await closed
  t.equal(s.server.tunnels, 0)
  await t.rejects(s.open('client'), { code: 'HOSTMESH_ERR_TUNNEL', status: 401 }, 'and new ones are refused')
})

t.test('a reset by the workload reaches the client as RST_STREAM(CONNECT_ERROR)', async (t) => {
  const s = await setup(t)
  const stream = await s.open('client')
  stream.on('error', () => undefined)
  stream.write('x')
  await new Promise((r) => stream.once('data', r))
  const closed = new Promise((r) => stream.once('close', r))
  s.workloadSockets.at(-1)!.resetAndDestroy()
  await closed
  t.equal(stream.rstCode, 10, 'NGHTTP2_CONNECT_ERROR, not a polite end')
  t.equal(s.server.tunnels, 0, 'the tunnel is gone on the server')
})

t.test('a burst of 150 tunnels fills sessions of at most 100 streams, and none fails', async (t) => {
  const s = await setup(t)
  const streams = await Promise.all(Array.from({ length: 150 }, () => s.open('client')))
  for (const x of streams) x.on('error', () => undefined)
  t.equal(streams.length, 150)
  t.equal(s.pool.sessions, 2, 'two sessions: 100 + 50')
  t.equal(s.server.tunnels, 150)
  for (const x of streams) x.destroy()
})

t.test('a TCP connection spliced onto a tunnel carries 10 MB both ways with a half-close', async (t) => {
  const s = await setup(t)
  const stream = await s.open('client')
  const [outer, inner] = await tcpPair()
  splice(inner, stream, () => undefined)
  let got = 0
  outer.on('data', (c: Buffer) => { got += c.length })
  const ended = new Promise((r) => outer.once('end', r))
  outer.end(Buffer.alloc(10 << 20, 1))
  let timer: NodeJS.Timeout | undefined
  await Promise.race([ended, new Promise((_, rej) => { timer = setTimeout(() => rej(new Error(`stalled at ${got} bytes`)), 10_000) })])
  clearTimeout(timer)
  t.equal(got, 10 << 20)
  outer.destroy()
})
