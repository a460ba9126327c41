// scripts/install.sh and scripts/uninstall.sh, for real. install.sh --root puts the package,
// the units, the user and /etc/hostmesh into a temporary root; a second run changes nothing.
// systemd-analyze checks the installed units. Then, inside a namespace test host, the
// INSTALLED package runs the way its units run it: hostmesh-capture.service's ExecStart as
// root with CAP_NET_ADMIN only installs the capture rules before any daemon runs; then
// hostmesh.service's ExecStart through /usr/bin/hostmesh, as a non-root system user with only
// the unit's capabilities, under the systemd stand-in (scripts/netns/service-manager.py) with
// hostmesh.socket's sockets. It must send READY=1 and sync its iptables rules. uninstall.sh,
// run in that host, stops before deleting anything when the rules cannot be removed, removes
// the rules (with --root only when given --remove-rules) and the package, and keeps
// /etc/hostmesh, given to root; a reinstall gives the certificates back; --purge removes it.
import { execFileSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import { chmodSync, chownSync, cpSync, existsSync, lchownSync, linkSync, mkdirSync, mkdtempSync, readFileSync, readdirSync, readlinkSync, renameSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { initRootCa, makeNodeCa } from '../../certs/ca-ops.ts'
import { run } from '../../scripts/netns/exec.ts'
import { testNet, type HostProcess, type TestHost } from '../../scripts/netns/hosts.ts'
import { e2eSkip } from '../helpers/e2e.ts'
import { listing, unitSettings, unitValue } from '../helpers/install.ts'

const REPO = new URL('../../', import.meta.url).pathname
const INSTALL = join(REPO, 'scripts/install.sh')
const UNINSTALL = join(REPO, 'scripts/uninstall.sh')
const MANAGER = new URL('../../scripts/netns/service-manager.py', import.meta.url).pathname
const PKG = JSON.parse(readFileSync(join(REPO, 'package.json'), 'utf8')) as { dependencies: Record<string, string>; devDependencies: Record<string, string> }
// What systemd gives a system service: its default PATH and a few variables, nothing of ours.
const SERVICE_PATH = '/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin'
const UNIT_DIR = 'usr/lib/systemd/system'
const UNITS = ['hostmesh.service', 'hostmesh.socket', 'hostmesh-capture.service'] as const
// /proc/PID/status CapEff/CapBnd with CAP_NET_ADMIN (bit 12) and nothing else.
const NET_ADMIN_ONLY = '0000000000001000'

interface Event { event: string; pid?: number; code?: number }
const events = (p: HostProcess): Event[] => p.output.split('\n').filter((l) => l.startsWith('{"event"')).map((l) => JSON.parse(l) as Event)
const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
/** The nat table (capture) and the filter table (owner guard), IPv4 and IPv6. */
const meshRules = async (h: TestHost): Promise<string> => {
  let out = ''
  for (const tool of ['iptables', 'ip6tables']) for (const table of ['nat', 'filter']) out += await h.mustExec([tool, '-w', '5', '-t', table, '-S'])
  return out
}

t.test('install.sh, the installed units and daemon, uninstall.sh', { skip: e2eSkip() }, async (t) => {
  const root = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-install-root-'))
  const work = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-install-work-'))
  t.teardown(() => { rmSync(root, { recursive: true, force: true }); rmSync(work, { recursive: true, force: true }) })
  // The daemon's user must reach the package and its config, as any user reaches /opt and /etc.
  chmodSync(root, 0o755)
  chmodSync(work, 0o755)
  const at = (p: string): string => join(root, p)
  const install = (...args: string[]) => run('bash', [INSTALL, '--root', root, ...args], { timeoutMs: 170_000 })
  const rootCa = join(work, 'root-ca')
  await initRootCa({ dir: rootCa, trustDomain: 'cluster.local' })

  const first = await install()
  t.equal(first.code, 0, `install.sh --root: ${first.stderr}`)
  if (first.code !== 0) return
  const before = listing(root)
  const ids = /^hostmesh:x:(\d+):(\d+):[^:]*:[^:]*:\/usr\/sbin\/nologin$/m.exec(readFileSync(at('etc/passwd'), 'utf8'))
  const owner = `${ids?.[1]}:${ids?.[2]}`

  await t.test('layout, owners and modes', async (t) => {
    t.ok(ids, 'the hostmesh system user is in ROOT/etc/passwd, with nologin')
    t.match(readFileSync(at('etc/group'), 'utf8'), new RegExp(`^hostmesh:x:${ids?.[2]}:`, 'm'), 'and its group in ROOT/etc/group')
    const entry = (p: string): string => before[p] ?? 'absent'
    t.equal(entry('etc/hostmesh'), 'd 0755 0:0')
    t.equal(entry('etc/hostmesh/policy.d'), 'd 0755 0:0')
    t.equal(entry('etc/hostmesh/certs'), `d 0700 ${owner}`, 'certs: 0700, owned by hostmesh')
    t.match(entry('etc/hostmesh/hostmesh.yaml'), /^f 0644 0:0 /)
    t.equal(readFileSync(at('etc/hostmesh/hostmesh.yaml'), 'utf8'), readFileSync(join(REPO, 'systemd/etc-hostmesh/hostmesh.yaml'), 'utf8'), 'hostmesh.yaml is the example')
    for (const [src, dest] of [...UNITS.map((u) => [u, `${UNIT_DIR}/${u}`] as const),
      ['hostmesh.sysusers', 'usr/lib/sysusers.d/hostmesh.conf'], ['hostmesh.tmpfiles', 'usr/lib/tmpfiles.d/hostmesh.conf'], ['hostmesh.sysctl', 'usr/lib/sysctl.d/60-hostmesh.conf']] as const) {
      t.match(entry(dest), /^f 0644 0:0 /, `${dest}: 0644 root`)
      t.equal(readFileSync(at(dest), 'utf8'), readFileSync(join(REPO, 'systemd', src), 'utf8'), `${dest} is systemd/${src}`)
    }
    t.match(entry('usr/bin/hostmesh'), /^f 0755 0:0 /)
    t.match(readFileSync(at('usr/bin/hostmesh'), 'utf8'), /^#!\/bin\/sh\n(#.*\n)*exec \/opt\/hostmesh\/runtime\/bin\/node \/opt\/hostmesh\/dist\/daemon\/cli\.js "\$@"\n$/, 'the wrapper execs the runtime on cli.js')

    const pkg = Object.keys(before).filter((p) => p.startsWith('opt/hostmesh'))
    const writable = (e: string): boolean => !e.startsWith('l ') && (parseInt(e.slice(2, 6), 8) & 0o022) !== 0
    t.same(pkg.filter((p) => before[p]!.split(' ')[2] !== '0:0' || writable(before[p]!)), [], 'the package is root-owned and writable by root only')
    for (const p of ['package.json', 'README.md', 'dist/daemon/cli.js', 'build/Release/origdst.node', 'build/Release/sdnotify.node', 'policy/examples/00-nodes.yaml', 'docs/operations.md']) {
      t.ok(before[`opt/hostmesh/${p}`]?.startsWith('f '), `opt/hostmesh/${p}`)
    }
    t.same(pkg.filter((p) => /\.(ts|map)$/.test(p) && p.startsWith('opt/hostmesh/dist/')), [], 'dist: JavaScript only, no source maps of unshipped sources')
    t.same(Object.keys(PKG.dependencies).filter((d) => !before[`opt/hostmesh/node_modules/${d}/package.json`]), [], 'every dependency is installed')
    t.same([...Object.keys(PKG.devDependencies), '@tapjs/core', '.bin'].filter((d) => before[`opt/hostmesh/node_modules/${d}`]), [], 'no devDependency (tap, typescript, node, types) and no .bin')
    const runtime = at('opt/hostmesh/runtime/bin/node')
    t.match(entry('opt/hostmesh/runtime/bin/node'), /^f 0755 0:0 /)
    const real = execFileSync(join(REPO, 'node_modules/.bin/node'), ['-p', 'process.execPath'], { encoding: 'utf8' }).trim()
    t.equal(entry('opt/hostmesh/runtime/bin/node').split(' ')[3], createHash('sha256').update(readFileSync(real)).digest('hex'), 'the runtime is the real Node binary behind node_modules/.bin/node')
    const version = execFileSync(runtime, [at('opt/hostmesh/dist/daemon/cli.js'), 'version'], { encoding: 'utf8' })
    t.match(version, /^node v2[4-9]\./m, 'the installed CLI runs on Node 24+')
    t.match(version, /origdst addon: built/, 'and loads its addon from the installed build/Release')
    t.match(first.stdout, /Next steps:[^]*hostmesh ca node[^]*hostmesh\.yaml[^]*systemctl enable --now hostmesh-capture\.service hostmesh\.socket hostmesh\.service/, 'it prints the next steps')
  })

  await t.test('a second run changes nothing', async (t) => {
    const second = await install()
    t.equal(second.code, 0, second.stderr)
    t.same(listing(root), before, 'same paths, types, modes, owners and hashes')
    t.notMatch(second.stdout, /^hostmesh: (installed|created|fixed) /m, `every step says unchanged or kept:\n${second.stdout}`)
    t.match(second.stdout, /kept +\/etc\/hostmesh\/hostmesh\.yaml/)
  })

  await t.test('the operator\'s files: hostmesh.yaml kept, keys made 0600 hostmesh; --enable', async (t) => {
    const certs = at('etc/hostmesh/certs')
    const edited = `${readFileSync(at('etc/hostmesh/hostmesh.yaml'), 'utf8')}# edited by the operator\n`
    writeFileSync(at('etc/hostmesh/hostmesh.yaml'), edited)
    await makeNodeCa({ caDir: rootCa, node: 'node-a', outDir: certs }) // as root: ca-key.pem is 0600 root
    mkdirSync(join(certs, 'workloads/shop/checkout'), { recursive: true })
    writeFileSync(join(certs, 'workloads/shop/checkout/key.pem'), 'k', { mode: 0o644 })
    // What the service user could plant in its own dir: never followed, never re-owned.
    writeFileSync(at('outside-key.pem'), 'secret', { mode: 0o600 })
    linkSync(at('outside-key.pem'), join(certs, 'planted-key.pem'))
    writeFileSync(at('outside2.pem'), 'x', { mode: 0o644 })
    symlinkSync(at('outside2.pem'), join(certs, 'linked-key.pem'))
    // A subdirectory the service user owns: it could swap an entry there while the key is
    // fixed (chmod follows symlinks), so install.sh does not touch it.
    mkdirSync(join(certs, 'own'))
    writeFileSync(join(certs, 'own/x-key.pem'), 'k', { mode: 0o644 })
    chownSync(join(certs, 'own'), Number(ids?.[1]), Number(ids?.[2]))

    const third = await install('--enable')
    t.equal(third.code, 0, third.stderr)
    const after = listing(root)
    t.equal(readFileSync(at('etc/hostmesh/hostmesh.yaml'), 'utf8'), edited, 'an existing hostmesh.yaml is never overwritten')
    t.match(after['etc/hostmesh/certs/ca-key.pem'], new RegExp(`^f 0600 ${owner} `), 'the node CA key: 0600, owned by hostmesh')
    t.match(after['etc/hostmesh/certs/workloads/shop/checkout/key.pem'], new RegExp(`^f 0600 ${owner} `), 'a workload key: 0600, owned by hostmesh')
    t.match(after['etc/hostmesh/certs/ca-cert.pem'], /^f 0644 0:0 /, 'certificates are left as they are')
    t.match(after['outside-key.pem'], /^f 0600 0:0 /, 'a hard-linked key is not re-owned')
    t.match(after['outside2.pem'], /^f 0644 0:0 /, 'a symlinked key is not followed')
    t.match(after['etc/hostmesh/certs/own/x-key.pem'], /^f 0644 0:0 /, 'a key in a dir the service user owns is left alone')
    t.match(third.stdout, /^hostmesh: warning: skipped \/etc\/hostmesh\/certs\/own: it is not root's/m, 'and install.sh says so')
    t.equal(after['etc/hostmesh/certs'], `d 0700 ${owner}`, 'the certs dir is the service user\'s again after the fix (root\'s while fixing)')
    t.same(third.stdout.split('\n').filter((l) => l.includes('fixed')).sort(),
      ['hostmesh: fixed      /etc/hostmesh/certs/ca-key.pem (0600 hostmesh)', 'hostmesh: fixed      /etc/hostmesh/certs/workloads/shop/checkout/key.pem (0600 hostmesh)'])
    t.equal(readlinkSync(at('etc/systemd/system/sockets.target.wants/hostmesh.socket')), '/usr/lib/systemd/system/hostmesh.socket', '--enable: hostmesh.socket wanted by sockets.target')
    t.equal(readlinkSync(at('etc/systemd/system/multi-user.target.wants/hostmesh.service')), '/usr/lib/systemd/system/hostmesh.service', '--enable: hostmesh.service wanted by multi-user.target')
    t.equal(readlinkSync(at('etc/systemd/system/sysinit.target.wants/hostmesh-capture.service')), '/usr/lib/systemd/system/hostmesh-capture.service', '--enable: hostmesh-capture.service wanted by sysinit.target')
    for (const p of ['outside-key.pem', 'outside2.pem', 'etc/hostmesh/certs/planted-key.pem', 'etc/hostmesh/certs/linked-key.pem', 'etc/hostmesh/certs/own']) rmSync(at(p), { recursive: true })

    const start = await install('--start')
    t.equal(start.code, 2, `--start with --root is a usage error: ${start.stderr}`)
    if (!existsSync('/run/systemd/system') && !existsSync('/opt/hostmesh') && !existsSync('/usr/bin/hostmesh')) {
      const live = await run('bash', [INSTALL, '--enable'], { timeoutMs: 30_000 })
      t.equal(live.code, 1, 'without a running systemd, --enable fails')
      t.match(live.stderr, /systemd is not running on this machine[^]*Nothing was installed/, live.stderr)
      t.notOk(existsSync('/opt/hostmesh') || existsSync('/usr/bin/hostmesh') || existsSync(`/${UNIT_DIR}/hostmesh.service`), 'and nothing was installed')
    }
  })

  const serviceText = readFileSync(at(`${UNIT_DIR}/hostmesh.service`), 'utf8')
  const socketText = readFileSync(at(`${UNIT_DIR}/hostmesh.socket`), 'utf8')
  const captureText = readFileSync(at(`${UNIT_DIR}/hostmesh-capture.service`), 'utf8')

  await t.test('systemd-analyze verify and security on the installed units', async (t) => {
    // verify needs ExecStart's binary on this system: the copies say where the installed one is.
    const verify = async (name: string, execStart: string) => {
      const dir = join(work, name)
      mkdirSync(dir)
      for (const unit of UNITS) {
        const text = readFileSync(at(`${UNIT_DIR}/${unit}`), 'utf8')
        const adjusted = text.replace(/^ExecStart=\/usr\/bin\/hostmesh /m, `ExecStart=${execStart} `)
        if (unit.endsWith('.service')) t.not(adjusted, text, `${unit}: ExecStart=/usr/bin/hostmesh ... adjusted for the root`)
        writeFileSync(join(dir, unit), adjusted)
      }
      return run('systemd-analyze', ['verify', ...UNITS.map((u) => join(dir, u))])
    }
    const ok = await verify('units', at('usr/bin/hostmesh'))
    t.equal(ok.code, 0, ok.stderr)
    t.equal(ok.stdout + ok.stderr, '', 'verify: no error and no warning')
    const broken = await verify('units-broken', at('usr/bin/hostmesh-missing'))
    t.not(broken.code, 0, 'verify does fail a unit whose ExecStart is missing (the check is real)')
    t.match(broken.stderr, /hostmesh-missing is not executable/)

    for (const unit of ['hostmesh.service', 'hostmesh-capture.service']) {
      const security = await run('systemd-analyze', ['security', '--offline=true', `--root=${root}`, unit])
      t.equal(security.code, 0, security.stderr)
      const exposure = new RegExp(`Overall exposure level for ${unit.replaceAll('.', '\\.')}: (\\d+\\.\\d+)`).exec(security.stdout)
      t.ok(exposure, `${unit}: an exposure level: ${security.stdout.slice(-200)}`)
      t.ok(Number(exposure?.[1]) <= 2.5, `${unit}: exposure ${exposure?.[1]} <= 2.5`)
      t.comment(`systemd-analyze security ${unit}: ${exposure?.[1]}`)
    }
  })

  await t.test('the installed daemon, run as the unit runs it, becomes ready and syncs iptables', async (t) => {
    const net = await testNet(t, { hosts: ['node-a'] })
    const host = net.host('node-a')
    const user = await net.user()
    const service = unitSettings(serviceText)
    const socket = unitSettings(socketText)
    t.equal(unitValue(service, 'Service.User'), 'hostmesh', 'the unit runs as hostmesh (here: a test user of the same kind)')

    cpSync(join(REPO, 'policy/examples'), join(work, 'policy.d'), { recursive: true })
    await makeNodeCa({ caDir: rootCa, node: 'node-a', outDir: join(work, 'certs') })
    execFileSync('chown', ['-R', `${user.uid}:${user.gid}`, join(work, 'certs')])
    // RuntimeDirectory=hostmesh as systemd makes it (the service user's, RuntimeDirectoryMode=), for the admin socket.
    t.equal(unitValue(service, 'Service.RuntimeDirectory'), 'hostmesh')
    const runtimeDir = join(work, 'run-hostmesh')
    mkdirSync(runtimeDir, { mode: parseInt(unitValue(service, 'Service.RuntimeDirectoryMode'), 8) })
    chownSync(runtimeDir, user.uid, user.gid)
    const config = join(work, 'hostmesh.yaml')
    writeFileSync(config, `node: {name: node-a, addresses: [${host.ipv4}, "${host.ipv6}"]}\npolicyDir: ${join(work, 'policy.d')}\ncertDir: ${join(work, 'certs')}\nadmin: {socket: ${join(runtimeDir, 'admin.sock')}}\ndrainSeconds: 1\niptables: {sync: true}\n`)
    // /usr/bin/hostmesh with the root's /opt/hostmesh: the same two lines of sh.
    const wrapperText = readFileSync(at('usr/bin/hostmesh'), 'utf8')
    const wrapper = join(work, 'hostmesh')
    writeFileSync(wrapper, wrapperText.replaceAll('/opt/hostmesh/', `${root}/opt/hostmesh/`), { mode: 0o755 })
    t.equal(wrapperText.split('/opt/hostmesh/').length - 1, 2, 'the wrapper names the runtime and cli.js')

    // hostmesh-capture.service first, as at boot: its ExecStart, as root (no User=) with only
    // CAP_NET_ADMIN in the bounding set, NoNewPrivileges, systemd's environment. /etc/passwd
    // is bind-mounted (in a mount namespace of its own) to say what an installed host's says:
    // hostmesh is the daemon's user, here the test user.
    const capture = unitSettings(captureText)
    t.same(unitValue(capture, 'Service.ExecStart').split(/\s+/), ['/usr/bin/hostmesh', 'iptables', 'apply', '--config', '/etc/hostmesh/hostmesh.yaml'])
    t.equal(unitValue(capture, 'Service.Type'), 'oneshot')
    t.notOk(capture.has('Service.User'), 'it runs as root')
    t.equal(unitValue(capture, 'Service.CapabilityBoundingSet'), 'CAP_NET_ADMIN')
    t.equal(unitValue(capture, 'Service.NoNewPrivileges'), 'yes')
    t.equal(unitValue(capture, 'Unit.ConditionPathExists'), '/etc/hostmesh/hostmesh.yaml')
    t.same(unitValue(capture, 'Unit.Before').split(/\s+/).sort(), ['hostmesh.service', 'hostmesh.socket', 'network-pre.target', 'shutdown.target'], 'before the network, the daemon and its sockets')
    t.equal(unitValue(capture, 'Install.WantedBy'), 'sysinit.target')
    const passwd = join(work, 'passwd')
    writeFileSync(passwd, readFileSync('/etc/passwd', 'utf8').split('\n').filter((l) => l !== '' && !l.startsWith('hostmesh:')).join('\n') + `\nhostmesh:x:${user.uid}:${user.gid}::/:/usr/sbin/nologin\n`)
    const captureRun = (bounding: string) => host.exec(['env', '-i', `PATH=${SERVICE_PATH}`, 'LANG=C.UTF-8',
      'unshare', '--mount', '--propagation', 'private', '--', 'sh', '-c', 'mount --bind "$0" /etc/passwd && exec "$@"', passwd,
      'setpriv', '--no-new-privs', '--inh-caps=-all', `--bounding-set=-all${bounding}`, '--', wrapper, 'iptables', 'apply', '--config', config], { timeoutMs: 60_000 })
    t.notMatch(await meshRules(host), /HOSTMESH/, 'no hostmesh rule before')
    const denied = await captureRun('')
    t.not(denied.code, 0, `without CAP_NET_ADMIN it cannot (the bounding set is real): ${denied.stderr}`)
    t.notMatch(await meshRules(host), /HOSTMESH/, 'and changes nothing')
    const applied = await captureRun(',+net_admin')
    t.equal(applied.code, 0, `hostmesh-capture.service's ExecStart with CAP_NET_ADMIN only: ${applied.stderr}`)
    t.match(applied.stdout, new RegExp(`applied the capture rules .* the daemon's uid ${user.uid} is not captured`))
    const early = await meshRules(host)
    t.match(early, /^-A OUTPUT -p tcp -j HOSTMESH_OUTPUT$/m, `the capture rules are in place before any daemon runs: ${early}`)
    t.match(early, /^-A PREROUTING -p tcp -j HOSTMESH_PREROUTING$/m)
    t.match(early, new RegExp(`^-A HOSTMESH_OUTPUT -m owner --uid-owner ${user.uid} -j RETURN$`, 'm'), 'the hostmesh uid of /etc/passwd is never captured')
    t.match(early, /^-A HOSTMESH_OUTPUT -p tcp -m owner --uid-owner 2001 .*"shop\/checkout" -j REDIRECT --to-ports \d+$/m, 'checkout is captured')
    t.match(early, /^-A OUTPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate DNAT -j HOSTMESH_GUARD$/m, 'and the owner guard, in filter OUTPUT')
    t.match(early, /^-A HOSTMESH_GUARD .*--ctreplsrcport \d+ -m owner ! --uid-owner 2001 .*"shop\/checkout" -j REJECT --reject-with tcp-reset$/m, 'checkout\'s port is guarded')

    // ExecStart=, with the wrapper and the config of this test.
    const execStart = unitValue(service, 'Service.ExecStart').split(/\s+/)
    t.same(execStart, ['/usr/bin/hostmesh', 'run', '--config', '/etc/hostmesh/hostmesh.yaml'])
    const argv = [wrapper, ...execStart.slice(1, -1), config]
    // AmbientCapabilities=, CapabilityBoundingSet=, NoNewPrivileges= as setpriv flags.
    const caps = (key: string): string => unitValue(service, key).split(/\s+/).map((c) => `+${c.replace(/^CAP_/, '').toLowerCase()}`).join(',')
    t.equal(caps('Service.AmbientCapabilities'), '+net_admin')
    t.equal(caps('Service.CapabilityBoundingSet'), '+net_admin')
    t.equal(unitValue(service, 'Service.NoNewPrivileges'), 'yes')
    const setpriv = ['setpriv', `--reuid=${user.uid}`, `--regid=${user.gid}`, '--clear-groups', '--no-new-privs',
      `--inh-caps=-all,${caps('Service.AmbientCapabilities')}`, `--ambient-caps=-all,${caps('Service.AmbientCapabilities')}`, `--bounding-set=-all,${caps('Service.CapabilityBoundingSet')}`]
    // hostmesh.socket's ListenStream= (a bare port: every address), the fd store and watchdog.
    const listen = (socket.get('Socket.ListenStream') ?? []).flatMap((l) => ['--listen', /^\d+$/.test(l) ? `[::]:${l}` : l])
    t.same(listen, ['--listen', '127.0.0.1:15000', '--listen', '[::]:15006', '--listen', '[::]:15008'])
    // Worker threads bind their own sockets next to these: only a reuseport group allows it.
    t.equal(unitValue(socket, 'Socket.ReusePort'), 'yes', 'ReusePort=yes')
    listen.push('--reuse-port')
    const watchdog = /^(\d+)s$/.exec(unitValue(service, 'Service.WatchdogSec'))
    t.ok(watchdog, 'WatchdogSec= in seconds')
    // CacheDirectory= (the compile cache, daemon/cli.ts): the stand-in makes it as systemd does, with CacheDirectoryMode=.
    t.equal(unitValue(service, 'Service.CacheDirectory'), 'hostmesh')
    t.equal(unitValue(service, 'Service.CacheDirectoryMode'), '0700')
    const cacheDir = join(work, 'cache-hostmesh')
    mkdirSync(cacheDir, { mode: 0o700 })
    chownSync(cacheDir, user.uid, user.gid)
    const python = execFileSync('python3', ['-c', 'import sys; print(sys.executable)'], { encoding: 'utf8' }).trim()
    const log = join(work, 'daemon.log')
    const manager = host.spawn(['env', '-i', `PATH=${SERVICE_PATH}`, 'LANG=C.UTF-8', `USER=${user.name}`, `LOGNAME=${user.name}`, 'HOME=/',
      python, '-B', MANAGER, '--umask', unitValue(service, 'Service.UMask'), ...listen, '--fdstore-max', unitValue(service, 'Service.FileDescriptorStoreMax'),
      '--watchdog-usec', String(Number(watchdog?.[1]) * 1e6), '--cache-dir', cacheDir, '--log', log, '--', ...setpriv, ...argv])

    const seen = (name: string): boolean => events(manager).some((e) => e.event === name)
    for (let i = 0; i < 300 && !seen('ready') && !seen('exited') && manager.running; i++) await sleep(100)
    const daemonLog = (): string => existsSync(log) ? readFileSync(log, 'utf8').slice(-4000) : '(no log)'
    t.ok(seen('ready'), `READY=1 arrived from the main pid: ${manager.output}\n${daemonLog()}`)
    if (!seen('ready')) return
    t.notOk(seen('rejected'), 'no notification from another pid: the wrapper and setpriv exec, the pid stays')
    t.ok(seen('watchdog'), 'WATCHDOG=1 keep-alives arrive')
    const pid = events(manager).find((e) => e.event === 'started')!.pid!
    const status = readFileSync(`/proc/${pid}/status`, 'utf8')
    t.match(status, new RegExp(`^Uid:\\s+${user.uid}\\s+${user.uid}\\s+${user.uid}\\s+${user.uid}$`, 'm'), 'the main pid runs as the test user')
    t.match(status, new RegExp(`^CapEff:\\s+${NET_ADMIN_ONLY}$`, 'm'), 'with CAP_NET_ADMIN only')
    t.match(status, new RegExp(`^CapBnd:\\s+${NET_ADMIN_ONLY}$`, 'm'))
    t.match(status, /^NoNewPrivs:\s+1$/m)
    t.equal(readlinkSync(`/proc/${pid}/exe`), at('opt/hostmesh/runtime/bin/node'), 'and is the installed runtime')
    t.match((await host.mustExec(['curl', '-sS', '-m', '2', 'http://127.0.0.1:15000/ready'])), /"ready": true/, '/ready is true')
    t.match(listing(runtimeDir)['admin.sock'], new RegExp(`^\\? 0600 ${user.uid}:${user.gid}$`), 'the admin socket: 0600, the service user\'s')
    const rules = await meshRules(host)
    t.match(rules, /^-A OUTPUT -p tcp -j HOSTMESH_OUTPUT$/m, `the jumps are in place: ${rules}`)
    t.match(rules, /^-A PREROUTING -p tcp -j HOSTMESH_PREROUTING$/m)
    t.match(rules, new RegExp(`^-A HOSTMESH_OUTPUT -m owner --uid-owner ${user.uid} -j RETURN$`, 'm'), 'the daemon\'s own uid is never captured')
    t.match(rules, /^-A HOSTMESH_OUTPUT -p tcp -m owner --uid-owner 2001 .*"shop\/checkout" -j REDIRECT --to-ports \d+$/m, 'checkout is captured')

    process.kill(manager.pid, 'SIGTERM') // systemctl stop
    const stopped = await Promise.race([manager.exited, sleep(20_000).then(() => null)])
    t.ok(stopped, 'the service manager stopped')
    t.same(events(manager).filter((e) => e.event === 'exited').map((e) => e.code), [0], 'the daemon exited 0 after its drain')
    t.match(await meshRules(host), /HOSTMESH_OUTPUT/, 'the rules stay after a stop (fail closed)')
    const cached = readdirSync(join(cacheDir, 'compile-cache'), { recursive: true })
    t.ok(cached.length > 0, `the daemon left its compiled code in CacheDirectory= for the next start (${cached.length} entries)`)

    // uninstall.sh stops before deleting anything when the rules are not removed: a runtime
    // whose 'hostmesh iptables remove' fails, and one that "succeeds" but removes nothing.
    const uninstall = (...args: string[]) => host.exec(['bash', UNINSTALL, '--root', root, ...args], { timeoutMs: 60_000 })
    const kept = ['opt/hostmesh/dist/daemon/cli.js', 'usr/bin/hostmesh', ...UNITS.map((u) => `${UNIT_DIR}/${u}`), 'usr/lib/sysusers.d/hostmesh.conf', 'usr/lib/tmpfiles.d/hostmesh.conf', 'usr/lib/sysctl.d/60-hostmesh.conf']
    const runtime = at('opt/hostmesh/runtime/bin/node')
    renameSync(runtime, `${runtime}.real`)
    try {
      for (const [fake, why] of [['echo "simulated failure" >&2; exit 1', /'hostmesh iptables remove' failed \(exit 1, above\)[^]*nothing else was removed/],
        ['echo "removed nothing"', /'hostmesh iptables remove' left hostmesh rules in the nat or filter table[^]*Remove the rules with\n[^]*^ {2}iptables -w 5 -t nat -D OUTPUT -p tcp -j HOSTMESH_OUTPUT\n[^]*^ {2}iptables -w 5 -t filter -D OUTPUT -p tcp -m tcp --tcp-flags FIN,SYN,RST,ACK SYN -m conntrack --ctstate DNAT -j HOSTMESH_GUARD\n[^]*ip6tables -w 5 -t nat -F HOSTMESH_PREROUTING && ip6tables -w 5 -t nat -X HOSTMESH_PREROUTING\n[^]*ip6tables -w 5 -t filter -F HOSTMESH_GUARD && ip6tables -w 5 -t filter -X HOSTMESH_GUARD\n/m]] as const) {
        writeFileSync(runtime, `#!/bin/sh\n${fake}\n`, { mode: 0o755 })
        const failed = await uninstall('--remove-rules')
        t.equal(failed.code, 1, `a runtime that does "${fake}": uninstall.sh fails`)
        t.match(failed.stderr, why, failed.stderr)
        t.same(kept.filter((p) => !existsSync(at(p))), [], 'and deletes nothing')
        t.match(readFileSync(at('etc/passwd'), 'utf8'), /^hostmesh:/m, 'the user stays')
        t.match(await meshRules(host), /HOSTMESH_OUTPUT/, 'the rules stay')
      }
    } finally {
      rmSync(runtime, { force: true })
      renameSync(`${runtime}.real`, runtime)
    }

    // What the service user could plant in the certs dir: chown -R must not follow it out.
    const certs = at('etc/hostmesh/certs')
    writeFileSync(at('outside3.pem'), 'x', { mode: 0o644 })
    chownSync(at('outside3.pem'), Number(ids?.[1]), Number(ids?.[2]))
    symlinkSync(at('outside3.pem'), join(certs, 'linked.pem'))
    lchownSync(join(certs, 'linked.pem'), Number(ids?.[1]), Number(ids?.[2]))

    const removed = await uninstall('--remove-rules')
    t.equal(removed.code, 0, removed.stderr)
    t.match(removed.stdout, /removed the HOSTMESH_OUTPUT, HOSTMESH_PREROUTING and HOSTMESH_GUARD chains and 6 jumps/, removed.stdout)
    t.notMatch(await meshRules(host), /HOSTMESH/, 'uninstall.sh --remove-rules removed every hostmesh rule, IPv4 and IPv6')
    for (const p of ['opt/hostmesh', 'usr/bin/hostmesh', ...UNITS.map((u) => `${UNIT_DIR}/${u}`), 'usr/lib/sysusers.d/hostmesh.conf', 'usr/lib/tmpfiles.d/hostmesh.conf', 'usr/lib/sysctl.d/60-hostmesh.conf',
      'etc/systemd/system/sockets.target.wants/hostmesh.socket', 'etc/systemd/system/multi-user.target.wants/hostmesh.service', 'etc/systemd/system/sysinit.target.wants/hostmesh-capture.service']) {
      t.notOk(existsSync(at(p)), `${p} removed`)
    }
    t.notMatch(readFileSync(at('etc/passwd'), 'utf8'), /^hostmesh:/m, 'the user is removed')
    t.notMatch(readFileSync(at('etc/group'), 'utf8'), /^hostmesh:/m, 'and its group')
    t.ok(existsSync(at('etc/hostmesh/hostmesh.yaml')) && existsSync(at('etc/hostmesh/certs/ca-key.pem')), '/etc/hostmesh is kept: config, policy, certificates')
    const keptEtc = listing(at('etc/hostmesh'))
    t.same(Object.entries(keptEtc).filter(([, e]) => e.split(' ')[2] !== '0:0'), [], 'all of it root\'s: the freed uid and gid own nothing (a next system user would get them)')
    t.equal(keptEtc['certs'], 'd 0700 0:0', 'certs: 0700 root')
    t.match(keptEtc['certs/ca-key.pem'], /^f 0600 0:0 /, 'the node CA key: 0600 root')
    t.equal(keptEtc['certs/linked.pem'], `l 0777 0:0 -> ${at('outside3.pem')}`, 'a symlink is re-owned itself')
    t.match(listing(root)['outside3.pem'], new RegExp(`^f 0644 ${owner} `), 'and not followed')
    t.match(removed.stdout, /re-owned +\/etc\/hostmesh\/certs \(root:root/)
    rmSync(at('outside3.pem'))
    rmSync(join(certs, 'linked.pem'))

    // With --root, the rules of this namespace are not the root's: left alone unless --remove-rules.
    await host.mustExec([join(REPO, 'node_modules/.bin/node'), join(REPO, 'daemon/cli.ts'), 'iptables', 'apply', '--config', config, '--daemon-uid', String(user.uid)])
    const again = await uninstall()
    t.equal(again.code, 0, `a second uninstall: ${again.stderr}`)
    t.match(again.stdout, /absent +\/opt\/hostmesh/)
    t.match(again.stdout, /iptables +left as they are: with --root[^]*--remove-rules removes them/)
    t.match(await meshRules(host), /^-A OUTPUT -p tcp -j HOSTMESH_OUTPUT$/m, '--root without --remove-rules leaves the rules of this namespace')
    const checkout = await uninstall('--remove-rules')
    t.equal(checkout.code, 0, `--remove-rules with the package gone: iptables remove from the checkout: ${checkout.stderr}`)
    t.match(checkout.stdout, /removed the HOSTMESH_OUTPUT, HOSTMESH_PREROUTING and HOSTMESH_GUARD chains and 6 jumps/)
    t.notMatch(await meshRules(host), /HOSTMESH/, 'and the rules are gone')

    // A reinstall gives the certificates back to the (new) hostmesh user.
    const reinstall = await install()
    t.equal(reinstall.code, 0, reinstall.stderr)
    const newIds = /^hostmesh:x:(\d+):(\d+):/m.exec(readFileSync(at('etc/passwd'), 'utf8'))
    const newOwner = `${newIds?.[1]}:${newIds?.[2]}`
    const reinstalled = listing(at('etc/hostmesh'))
    t.equal(reinstalled['certs'], `d 0700 ${newOwner}`, 'after a reinstall the certs dir is hostmesh\'s again')
    t.match(reinstalled['certs/ca-key.pem'], new RegExp(`^f 0600 ${newOwner} `), 'and the node CA key')
    t.match(reinstalled['certs/workloads/shop/checkout/key.pem'], new RegExp(`^f 0600 ${newOwner} `), 'and a workload key')

    const purge = await uninstall('--remove-rules', '--purge')
    t.equal(purge.code, 0, purge.stderr)
    t.notOk(existsSync(at('etc/hostmesh')), '--purge removes /etc/hostmesh')
    t.notOk(existsSync(at('opt/hostmesh')), 'and the reinstalled package')
  })
})
