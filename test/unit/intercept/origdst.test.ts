import { closeSync, openSync } from 'node:fs'
import { createServer, connect, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { OrigDstLookupError, OrigDstUnavailableError } from '../../../daemon/intercept/errors.ts'
import { addonStatus, defaultAddonPath, loadAddon, originalDst, resetAddonForTests } from '../../../daemon/intercept/origdst.ts'

t.afterEach(() => resetAddonForTests())

t.test('the addon is built by npm ci and loads', async (t) => {
  const addon = loadAddon()
  t.type(addon.originalDst, 'function')
  t.same(addonStatus(), { ok: true })
  t.match(defaultAddonPath(), /build\/Release\/origdst\.node$/)
})

t.test('a missing addon raises a clear error that says how to fix the build', async (t) => {
  const err = t.throws(() => loadAddon('/nonexistent/origdst.node')) as OrigDstUnavailableError
  t.ok(err instanceof OrigDstUnavailableError)
  t.equal(err.code, 'HOSTMESH_ERR_ORIGDST_UNAVAILABLE')
  t.match(err.message, /could not be loaded/)
  t.match(err.message, /apt-get install -y g\+\+ make python3/)
  t.match(err.message, /npm rebuild hostmesh/)
  t.match(err.cause, { code: 'MODULE_NOT_FOUND' }, 'the loader error is kept as cause')
  t.throws(() => loadAddon(), OrigDstUnavailableError, 'the failure is remembered')
  resetAddonForTests()
  t.match(addonStatus('/nonexistent/origdst.node'), { ok: false, reason: /Cannot find module/ })
})

async function pair(t: Test, host: string): Promise<Socket> {
  const server = createServer()
  await new Promise<void>((r) => server.listen(0, host, r))
  const accepted = new Promise<Socket>((r) => server.once('connection', r))
  const client = connect((server.address() as { port: number }).port, host)
  const sock = await accepted
  t.teardown(() => { client.destroy(); sock.destroy(); server.close() })
  return sock
}

t.test('the conntrack family follows the peer address, and errno is mapped', async (t) => {
  const calls: Array<[number, number]> = []
  const fake = {
    originalDst(fd: number, family: 4 | 6) {
      calls.push([fd, family])
      throw Object.assign(new Error('getsockopt(SO_ORIGINAL_DST): No such file or directory'), { code: 'ENOENT' })
    },
  }
  const sock = await pair(t, '127.0.0.1')
  const err = t.throws(() => originalDst(sock, fake)) as OrigDstLookupError
  t.equal(err.code, 'HOSTMESH_ERR_ORIGDST_LOOKUP')
  t.equal(err.errno, 'ENOENT')
  t.match(err.message, /not redirected by iptables/)
  t.equal(calls[0]?.[1], 4)
  t.ok(calls[0]![0] >= 0, 'passes the real fd')
  const sock6 = await pair(t, '::1')
  t.throws(() => originalDst(sock6, fake))
  t.equal(calls[1]?.[1], 6)
})

t.test('a destroyed socket is refused before reaching the addon', async (t) => {
  const sock = await pair(t, '127.0.0.1')
  sock.destroy()
  const err = t.throws(() => originalDst(sock, { originalDst: () => { throw new Error('must not be called') } })) as OrigDstLookupError
  t.equal(err.errno, 'EBADF')
})

t.test('the real addon rejects a bad family and a non-socket fd', async (t) => {
  const addon = loadAddon()
  t.throws(() => addon.originalDst(0, 5 as 4), { code: 'EINVAL', message: /family 4 or 6/ })
  const fd = openSync(new URL('../../../package.json', import.meta.url), 'r')
  t.teardown(() => closeSync(fd))
  t.throws(() => addon.originalDst(fd, 4), { code: 'ENOTSOCK', errno: 88 })
  t.throws(() => addon.originalDst(fd, 6), { code: 'ENOTSOCK', message: /IP6T_SO_ORIGINAL_DST/ })
})
