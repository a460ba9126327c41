import { createServer, type Server } from 'node:net'
import t from 'tap'
import { serverFd } from '../../../daemon/listeners/bind.ts'
import { InheritedSockets } from '../../../daemon/systemd/listen-fds.ts'

const listening = (host: string): Promise<Server> => new Promise((resolve) => {
  const s = createServer()
  s.listen({ host, port: 0, ipv6Only: false }, () => resolve(s))
})

t.test('no LISTEN_FDS, or LISTEN_FDS for another pid or none: nothing inherited, variables removed', async (t) => {
  const env: NodeJS.ProcessEnv = { LISTEN_FDS: '2', LISTEN_PID: '1', LISTEN_FDNAMES: 'a:b' }
  const s = InheritedSockets.fromEnv(env, 4242)
  t.same(env, {})
  t.same(InheritedSockets.fromEnv({ LISTEN_FDS: '1' }, 1, undefined, 0).drainUnclaimed(), [], 'no LISTEN_PID: not ours, as sd_listen_fds(3) says')
  t.equal(s.take('::', 15008), undefined)
  t.same(s.drainUnclaimed(), [])
  t.same(InheritedSockets.fromEnv({}).drainUnclaimed(), [])
})

t.test('malformed variables are named in the error', async (t) => {
  t.throws(() => InheritedSockets.fromEnv({ LISTEN_FDS: 'x', LISTEN_PID: '1' }, 1), { code: 'HOSTMESH_ERR_LISTEN_FDS', message: /LISTEN_FDS="x"/ })
  t.throws(() => InheritedSockets.fromEnv({ LISTEN_FDS: '2', LISTEN_FDNAMES: 'one', LISTEN_PID: '1' }, 1), { code: 'HOSTMESH_ERR_LISTEN_FDS', message: /1 names for LISTEN_FDS=2/ })
  t.throws(() => InheritedSockets.fromEnv({ LISTEN_FDS: '1', LISTEN_PID: '7' }, 7, undefined, 0), { code: 'HOSTMESH_ERR_LISTEN_FDS', message: /fd 0 .* is not a listening TCP socket/ })
})

t.test('a real listening socket is taken once, by address and port; outbound names give the ports back', async (t) => {
  const wildcard = await listening('::')
  const port = (wildcard.address() as { port: number }).port
  const fd = serverFd(wildcard)!
  const env: NodeJS.ProcessEnv = { LISTEN_FDS: '1', LISTEN_PID: '99', LISTEN_FDNAMES: 'outbound/shop/checkout' }
  const s = InheritedSockets.fromEnv(env, 99, undefined, fd)
  t.same(s.outboundPorts(), new Map([['shop/checkout', port]]))
  t.equal(s.take('127.0.0.1', port), undefined, 'another address is another socket')
  t.equal(s.take('0.0.0.0', port), undefined, 'an IPv4-only listener does not take a dual-stack socket')
  t.equal(s.take('::', port), fd)
  t.equal(s.take('::', port), undefined, 'taken at most once')
  wildcard.close()
})

t.test('a dual-stack listener takes an IPv4-only wildcard (the socket unit decides the family); other ports\' sockets stay', async (t) => {
  const v4 = await listening('0.0.0.0')
  const port = (v4.address() as { port: number }).port
  const s = InheritedSockets.fromEnv({ LISTEN_FDS: '1', LISTEN_PID: '5' }, 5, undefined, serverFd(v4)!)
  t.same(s.evict(port + 1), [], 'evict takes only the port asked for')
  t.equal(s.take('::', port), serverFd(v4))
  v4.close()
})

t.test('evict hands back the sockets on a port at other addresses', async (t) => {
  const loop = await listening('127.0.0.1')
  const port = (loop.address() as { port: number }).port
  const fd = serverFd(loop)!
  const s = InheritedSockets.fromEnv({ LISTEN_FDS: '1', LISTEN_PID: '5', LISTEN_FDNAMES: 'outbound/shop/checkout' }, 5, undefined, fd)
  t.equal(s.take('::', port), undefined)
  t.match(s.evict(port), [{ fd, name: 'outbound/shop/checkout' }])
  t.same(s.outboundPorts(), new Map(), 'gone from the set')
  loop.close()
})

t.test('sockets nobody took are handed back for closing', async (t) => {
  const loop = await listening('127.0.0.1')
  const fd = serverFd(loop)!
  const s = InheritedSockets.fromEnv({ LISTEN_FDS: '1', LISTEN_PID: '1' }, 1, undefined, fd)
  t.same(s.drainUnclaimed((x) => x.name.startsWith('outbound/')), [], 'a filter keeps what it does not select')
  t.match(s.drainUnclaimed(), [{ fd, name: 'unknown', address: '127.0.0.1', family: 4 }])
  t.same(s.drainUnclaimed(), [])
  loop.close()
})
