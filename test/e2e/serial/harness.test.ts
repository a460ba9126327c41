// Serial: the SIGKILL case leaves resources behind on purpose, and a harness starting in a
// parallel test file would clean them up before this test can look at them.
import { spawn } from 'node:child_process'
import { readFileSync } from 'node:fs'
import t, { type Test } from 'tap'
import { run } from '../../../scripts/netns/exec.ts'
import { cleanupLeftovers, TestNet, withTestNet } from '../../../scripts/netns/hosts.ts'
import { isAlive } from '../../../scripts/netns/names.ts'
import { e2eSkip } from '../../helpers/e2e.ts'

const VICTIM = new URL('../fixtures/harness-victim.ts', import.meta.url).pathname

interface Made { runId: string; namespaces: string[]; pids: number[]; users: string[]; rootLinks?: string[] }

async function rootLinks(): Promise<string[]> {
  return (await run('ip', ['-o', 'link', 'show'])).stdout.split('\n').map((l) => l.split(':')[1]?.trim() ?? '').filter(Boolean).sort()
}

async function namespaces(): Promise<string[]> {
  return (await run('ip', ['netns', 'list'])).stdout.split('\n').map((l) => l.split(' ')[0] ?? '').filter(Boolean)
}

/** Asserts that nothing the run made is left: namespace, process, user, link or rule. */
async function assertGone(t: Test, made: Made): Promise<void> {
  const ns = await namespaces()
  for (const n of made.namespaces) t.notOk(ns.includes(n), `namespace ${n} is gone`)
  // SIGKILL is delivered asynchronously: give the kernel a moment (bounded) before judging.
  for (let i = 0; i < 40 && made.pids.some(isAlive); i++) await new Promise((r) => setTimeout(r, 50))
  for (const pid of made.pids) t.notOk(isAlive(pid), `process ${pid} is gone`)
  const passwd = readFileSync('/etc/passwd', 'utf8')
  for (const u of made.users) t.notMatch(passwd, new RegExp(`^${u}:`, 'm'), `user ${u} is gone`)
  t.same(await rootLinks(), made.rootLinks, 'the root namespace has exactly the links it had before the run')
  // The rule carried the run id as a comment: look for it in every namespace that remains.
  const rules = (await run('ip', ['-all', 'netns', 'exec', 'iptables-save', '-t', 'nat'])).stdout + (await run('iptables-save', ['-t', 'nat'])).stdout
  t.notMatch(rules, made.runId, 'no iptables rule of the run remains anywhere')
}

function startVictim(mode: 'throw' | 'hang', before: Promise<string[]> = rootLinks()): { made: Promise<Made>; exit: Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>; pid: number } {
  const child = spawn(process.execPath, [VICTIM, mode], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stdout = ''
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  const made = new Promise<Made>((resolve, reject) => {
    child.stdout.on('data', (d: Buffer) => {
      stdout += d.toString()
      const line = stdout.split('\n')[0]
      if (stdout.includes('\n') && line) void before.then((rootLinks) => resolve({ ...(JSON.parse(line) as Made), rootLinks }))
    })
    child.once('exit', () => reject(new Error(`victim exited before reporting: ${stderr}`)))
  })
  const exit = new Promise<{ code: number | null; signal: NodeJS.Signals | null; stderr: string }>((resolve) => child.once('exit', (code, signal) => resolve({ code, signal, stderr })))
  return { made, exit, pid: child.pid! }
}

t.test('test hosts harness', { skip: e2eSkip() }, async (t) => {
  t.test('hosts have IPv4 and IPv6 addresses, loopback and default routes, and reach each other', async (t) => {
    await withTestNet({ hosts: ['a', 'b'] }, async (net) => {
      const [a, b] = [net.host('a'), net.host('b')]
      t.not(a.ipv4, b.ipv4)
      const addrs = await a.mustExec(['ip', '-o', 'addr', 'show'])
      t.match(addrs, `inet ${a.ipv4}/24`)
      t.match(addrs, `inet6 ${a.ipv6}/64`)
      t.match(addrs, /lo\s+inet 127\.0\.0\.1/)
      t.match(await a.mustExec(['ip', 'route', 'show', 'default']), /default via 10\.77\.0\.1/)
      t.match(await a.mustExec(['ip', '-6', 'route', 'show', 'default']), /default via fd77::1/)
      const server = b.spawn(['socat', 'TCP6-LISTEN:7000,ipv6only=0,reuseaddr,fork', 'SYSTEM:echo pong'])
      await waitListening(b, 7000)
      t.equal((await a.mustExec(['socat', '-T2', '-', `TCP4:${b.ipv4}:7000`], { input: '' })).trim(), 'pong', 'IPv4 across the bridge')
      t.equal((await a.mustExec(['socat', '-T2', '-', `TCP6:[${b.ipv6}]:7000`], { input: '' })).trim(), 'pong', 'IPv6 across the bridge')
      await server.stop()
    })
  })

  t.test('commands run as the chosen uid', async (t) => {
    await withTestNet({ hosts: 1 }, async (net) => {
      const user = await net.user()
      t.equal((await net.hosts[0]!.mustExec(['id', '-u'], { uid: user.uid, gid: user.gid })).trim(), String(user.uid))
      const proc = net.hosts[0]!.spawn(['sh', '-c', 'id -u; sleep 30'], { uid: user.uid, gid: user.gid })
      await proc.waitFor(new RegExp(`^${user.uid}$`, 'm'))
      t.pass('spawned process runs as the user')
    })
  })

  t.test('a test that throws halfway leaves nothing behind (in process)', async (t) => {
    const before = await rootLinks()
    let made: Made | undefined
    await t.rejects(withTestNet({ hosts: 2 }, async (net) => {
      const user = await net.user()
      const p = net.hosts[1]!.spawn(['sleep', '300'], { uid: user.uid })
      await net.hosts[1]!.mustExec(['iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-m', 'comment', '--comment', net.runId, '-j', 'RETURN'])
      made = { runId: net.runId, namespaces: [net.switchNs, ...net.hosts.map((h) => h.netns)], pids: [p.pid], users: [user.name], rootLinks: before }
      t.ok((await namespaces()).includes(net.hosts[1]!.netns), 'the namespace existed while the test ran')
      throw new Error('halfway')
    }), /halfway/)
    await assertGone(t, made!)
  })

  t.test('an uncaught throw in a test process leaves nothing behind', async (t) => {
    const victim = startVictim('throw')
    const made = await victim.made
    const exit = await victim.exit
    t.equal(exit.code, 1, 'the process failed')
    t.match(exit.stderr, /failing halfway through/)
    await assertGone(t, made)
  })

  t.test('an interrupted test process (SIGINT) leaves nothing behind', async (t) => {
    const victim = startVictim('hang')
    const made = await victim.made
    t.ok((await namespaces()).includes(made.namespaces[1]!), 'the namespace exists before the interrupt')
    process.kill(victim.pid, 'SIGINT')
    const exit = await victim.exit
    t.equal(exit.code, 130)
    await assertGone(t, made)
  })

  t.test('leftovers of a killed run are cleaned up at the next start', async (t) => {
    const victim = startVictim('hang')
    const made = await victim.made
    process.kill(victim.pid, 'SIGKILL')
    await victim.exit
    t.ok((await namespaces()).includes(made.namespaces[1]!), 'SIGKILL left the namespace behind')
    t.ok(isAlive(made.pids[0]!), 'and its process')
    const cleaned = await cleanupLeftovers()
    t.same(cleaned.namespaces.sort(), made.namespaces.sort())
    t.same(cleaned.users, made.users)
    await assertGone(t, made)
  })

  t.test('names are unique per run', async (t) => {
    const [n1, n2] = await Promise.all([TestNet.create({ hosts: 1 }), TestNet.create({ hosts: 1 })])
    t.teardown(async () => { await n1.destroy(); await n2.destroy() })
    t.not(n1.runId, n2.runId)
    t.not(n1.hosts[0]!.netns, n2.hosts[0]!.netns)
  })
})

async function waitListening(host: { exec: TestNet['hosts'][number]['exec'] }, port: number): Promise<void> {
  for (let i = 0; i < 100; i++) {
    const res = await host.exec(['ss', '-Hltn', `sport = :${port}`])
    if (res.stdout.trim()) return
    await new Promise((r) => setTimeout(r, 50))
  }
  throw new Error(`nothing listens on :${port} after 5 s`)
}
