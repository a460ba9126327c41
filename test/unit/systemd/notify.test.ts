// sd_notify from the real addon to a real AF_UNIX datagram socket, and the daemon's
// READY=1 / STOPPING=1 / WATCHDOG=1 / RELOADING=1 around its lifecycle.
import { mkdtempSync, writeFileSync } from 'node:fs'
import { createServer, type Server } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { Daemon } from '../../../daemon/run/lifecycle.ts'
import { serverFd } from '../../../daemon/listeners/bind.ts'
import { ServiceManager } from '../../../daemon/systemd/notify.ts'
import { loadSdAddon } from '../../../daemon/systemd/native.ts'
import { logSink } from '../../helpers/log-sink.ts'
import { notifyReceiver } from '../../helpers/notify-receiver.ts'
import { daemonPorts } from '../../helpers/ports.ts'
import { createLogger } from '../../../daemon/log/logger.ts'

const listening = (): Promise<Server> => new Promise((resolve) => {
  const s = createServer()
  s.listen(0, '127.0.0.1', () => resolve(s))
})

t.test('outside systemd every call is a no-op and nothing is loaded', async (t) => {
  const env: NodeJS.ProcessEnv = { WATCHDOG_USEC: '1000000' }
  const sm = new ServiceManager({ env, log: createLogger('silent', {}).root })
  t.equal(sm.enabled, false)
  t.equal(sm.watchdogMs, undefined, 'no watchdog without a notify socket')
  sm.ready('x')
  sm.startWatchdog()
  sm.stopping('y')
  t.same(env, {}, 'the variables are removed either way')
})

t.test('messages, fds and the watchdog reach the notify socket', async (t) => {
  const rx = await notifyReceiver(t)
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: rx.path, WATCHDOG_USEC: '200000', WATCHDOG_PID: String(process.pid) }
  const logs = logSink()
  const sm = new ServiceManager({ env, log: createLogger('info', {}, logs.dest).root })
  t.equal(sm.enabled, true)
  t.equal(sm.watchdogMs, 200)
  t.same(env, {}, 'children do not inherit NOTIFY_SOCKET or WATCHDOG_*')
  sm.startWatchdog()
  sm.reloading()
  sm.reloaded('not ready yet')
  sm.ready('ready: generation 1')
  const server = await listening()
  t.teardown(() => server.close())
  sm.storeFds('outbound/shop/checkout', [serverFd(server)!])
  sm.removeFds('outbound/shop/checkout')
  sm.reloading()
  sm.stopping('draining')
  await rx.waitFor(/^STOPPING=1/)
  const msgs = rx.messages()
  t.ok(msgs.filter((m) => m.message === 'WATCHDOG=1').length >= 1, 'a keep-alive right away')
  t.ok(msgs.some((m) => m.message === 'READY=1\nSTATUS=ready: generation 1'))
  t.match(msgs.find((m) => m.message.startsWith('FDSTORE=1')), { message: 'FDSTORE=1\nFDNAME=outbound/shop/checkout', fds: 1 }, 'the fd travels with SCM_RIGHTS')
  t.ok(msgs.some((m) => m.message === 'FDSTOREREMOVE=1\nFDNAME=outbound/shop/checkout'))
  t.match(msgs.find((m) => m.message.startsWith('RELOADING=1'))?.message, /^RELOADING=1\nMONOTONIC_USEC=\d+$/)
  t.equal(msgs.findIndex((m) => m.message.startsWith('READY=1')), msgs.findIndex((m) => m.message === 'READY=1\nSTATUS=ready: generation 1'), 'a reload before READY=1 sends neither RELOADING=1 nor READY=1')
  sm.ready('after stopping')
  sm.status('after stopping')
  await new Promise((r) => setTimeout(r, 100))
  t.notOk(rx.messages().some((m) => m.message.includes('after stopping')), 'nothing but STOPPING after STOPPING=1')
  const pings = msgs.filter((m) => m.message === 'WATCHDOG=1').length
  await new Promise((r) => setTimeout(r, 300))
  t.equal(rx.messages().filter((m) => m.message === 'WATCHDOG=1').length, pings, 'no keep-alive after STOPPING=1')
})

t.test('a watchdog meant for another pid is not ours; a failed send is logged, not thrown', async (t) => {
  const logs = logSink()
  const sm = new ServiceManager({ env: { NOTIFY_SOCKET: join(tmpdir(), 'hostmesh-no-such-socket'), WATCHDOG_USEC: '1000', WATCHDOG_PID: '1' }, log: createLogger('info', {}, logs.dest).root })
  t.equal(sm.watchdogMs, undefined)
  sm.ready('x')
  t.match(logs.lines().find((l) => l.msg === 'sd_notify failed'), { level: 'warn', message: 'READY=1', err: { code: 'ENOENT' } })
})

t.test('the addon: listeningSocket on real fds, argument errors', async (t) => {
  const addon = loadSdAddon()
  const server = await listening()
  t.teardown(() => server.close())
  const fd = serverFd(server)!
  t.same(addon.listeningSocket(fd), { address: '127.0.0.1', port: (server.address() as { port: number }).port, family: 4 })
  t.equal(addon.listeningSocket(0), null, 'stdin is no listening socket')
  t.throws(() => addon.listeningSocket(-1), /non-negative/)
  t.throws(() => addon.listeningSocket(100_000), { code: 'EBADF' })
  t.throws(() => addon.notify('', 'READY=1', []), /socket path/)
  t.throws(() => addon.notify('/x', 'READY=1', [-1]), /non-negative/)
  t.throws(() => addon.notify('@hostmesh-test-no-such-abstract-socket', 'READY=1', []), { code: 'ECONNREFUSED' })
})

t.test('the daemon: STATUS while waiting, READY=1 when /ready is ready, RELOADING on SIGHUP, STOPPING before the drain', async (t) => {
  const rx = await notifyReceiver(t)
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-notify-daemon-'))
  const ports = await daemonPorts()
  const path = join(dir, 'hostmesh.yaml')
  writeFileSync(path, `node: {name: node-a, addresses: [127.0.0.1]}\n${ports.yaml}policyDir: ${dir}/policy.d\ncertDir: ${dir}/certs\ndrainSeconds: 1\n`)
  const env: NodeJS.ProcessEnv = { NOTIFY_SOCKET: rx.path, WATCHDOG_USEC: '10000000', WATCHDOG_PID: String(process.pid) }
  const daemon = await Daemon.start({ configPath: path, logDest: logSink().dest, env })
  await rx.waitFor(/^READY=1/)
  const ready = await fetch(`http://127.0.0.1:${ports.admin}/ready`)
  t.equal(ready.status, 200, '/ready agrees')
  await ready.body?.cancel()
  await daemon.reload('test')
  await daemon.stop('test')
  await rx.waitFor(/^STOPPING=1/)
  const msgs = rx.messages().map((m) => m.message)
  t.ok(msgs.indexOf('WATCHDOG=1') >= 0)
  const waiting = msgs.findIndex((m) => m.startsWith('STATUS=waiting for'))
  t.ok(waiting >= 0 && waiting < msgs.findIndex((m) => m.startsWith('READY=1')), 'waiting status first')
  t.match(msgs.find((m) => m.startsWith('READY=1')), /STATUS=ready: policy generation 1, 0 local workload/)
  const reloading = msgs.findIndex((m) => m.startsWith('RELOADING=1'))
  t.ok(reloading > 0 && msgs.slice(reloading + 1).some((m) => m.startsWith('READY=1')), 'READY=1 again after RELOADING=1')
  t.match(msgs.at(-1), /^STOPPING=1\nEXTEND_TIMEOUT_USEC=11000000\nSTATUS=draining \(test\), up to 1s$/, 'the stop timeout covers the drain')
})
