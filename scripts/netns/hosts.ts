// Test hosts for the end-to-end tests and the demo: N network namespaces on one bridge, each
// with its own IPv4 and IPv6 address, loopback up and a default route, as real as a VM on a LAN.
//
//   hmt-<pid>-<run>-sw   the "switch": br0 (10.77.0.1/24, fd77::1/64), one veth port per host.
//                        It has no uplink and does not forward, so nothing can leave the run.
//   hmt-<pid>-<run>-h1   a host: eth0 10.77.0.11/24 + fd77::11/64, default routes via the switch
//
// Every link lives inside the run's own namespaces, so deleting them removes every link,
// address and iptables rule of the run. Cleanup happens on destroy(), on process exit, on
// SIGINT/SIGTERM/SIGHUP, and for runs that crashed (owner pid gone) at the next run's start.
import { spawn, type ChildProcess } from 'node:child_process'
import { readFileSync } from 'node:fs'
import { mustRun, run, runSync, type ExecResult } from './exec.ts'
import { readableArgv } from './readable.ts'
import { isAlive, newRunId, ownerPid, PREFIX, userName } from './names.ts'

export const SUBNET4 = '10.77.0'
export const SUBNET6 = 'fd77:'
export const GATEWAY4 = `${SUBNET4}.1`
export const GATEWAY6 = `${SUBNET6}:1`

export interface TestUser {
  readonly name: string
  readonly uid: number
  readonly gid: number
}

export interface RunAs {
  /** Run as this uid (and gid, default the same); root when absent. */
  readonly uid?: number
  readonly gid?: number
}

export interface ExecOptions extends RunAs {
  readonly timeoutMs?: number
  readonly input?: string
}

export interface SpawnOptions extends RunAs {
  readonly env?: NodeJS.ProcessEnv
  readonly cwd?: string
}

const MAX_CAPTURE = 1024 * 1024

function otherUid(as: RunAs): boolean {
  return as.uid !== undefined && as.uid !== 0
}

function dropTo(as: RunAs): string[] {
  return ['setpriv', `--reuid=${as.uid}`, `--regid=${as.gid ?? as.uid}`, '--clear-groups', '--']
}

/**
 * Another uid runs without NODE_OPTIONS: under tap it names hooks in the checkout's
 * node_modules, which that uid may not be able to read (nor write their coverage files).
 * It is unset by `env` right before the command, because tap puts it back into the
 * environment of every child this process spawns.
 */
const WITHOUT_HOOKS = ['env', '-u', 'NODE_OPTIONS']

/** A long-lived process inside a host, in its own process group so it can be killed whole. */
export class HostProcess {
  readonly child: ChildProcess
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>
  #output = ''

  constructor(child: ChildProcess) {
    this.child = child
    const capture = (chunk: Buffer): void => {
      if (this.#output.length < MAX_CAPTURE) this.#output += chunk.toString('utf8')
    }
    child.stdout?.on('data', capture)
    child.stderr?.on('data', capture)
    this.exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })))
  }

  get pid(): number {
    return this.child.pid ?? -1
  }

  /** stdout and stderr so far (the first MiB). */
  get output(): string {
    return this.#output
  }

  get running(): boolean {
    return this.child.exitCode === null && this.child.signalCode === null
  }

  /** Resolves when the output matches, rejects on exit or after `timeoutMs`. */
  waitFor(pattern: RegExp, timeoutMs = 10_000): Promise<RegExpMatchArray> {
    return new Promise((resolve, reject) => {
      const check = (): boolean => {
        const m = pattern.exec(this.#output)
        if (m) { done(); resolve(m) }
        return m !== null
      }
      const onExit = (): void => { if (!check()) { done(); reject(new Error(`process ${this.pid} exited before printing ${pattern}; output:\n${this.#output}`)) } }
      const timer = setTimeout(() => { done(); reject(new Error(`timed out after ${timeoutMs} ms waiting for ${pattern}; output:\n${this.#output}`)) }, timeoutMs)
      const done = (): void => {
        clearTimeout(timer)
        this.child.stdout?.off('data', check)
        this.child.stderr?.off('data', check)
        this.child.off('exit', onExit)
      }
      if (check()) return
      this.child.stdout?.on('data', check)
      this.child.stderr?.on('data', check)
      this.child.once('exit', onExit)
    })
  }

  /** SIGTERM (or `signal`) to the whole group; SIGKILL after `graceMs`. */
  async stop(signal: NodeJS.Signals = 'SIGTERM', graceMs = 3000): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    if (!this.running) return this.exited
    killGroup(this.pid, signal)
    const timer = setTimeout(() => killGroup(this.pid, 'SIGKILL'), graceMs)
    const res = await this.exited
    clearTimeout(timer)
    return res
  }
}

export class TestHost {
  readonly name: string
  readonly netns: string
  readonly ipv4: string
  readonly ipv6: string
  readonly #net: TestNet

  constructor(net: TestNet, name: string, netns: string, index: number) {
    this.#net = net
    this.name = name
    this.netns = netns
    this.ipv4 = `${SUBNET4}.${10 + index}`
    this.ipv6 = `${SUBNET6}:${10 + index}`
  }

  /**
   * The argv that runs `cmd` inside this host, as the given uid. Another uid gets files it can
   * read (scripts/netns/readable.ts): the checkout may be one only root can enter.
   */
  command(cmd: readonly string[], as: RunAs = {}): string[] {
    if (!otherUid(as)) return ['ip', 'netns', 'exec', this.netns, ...(as.uid === undefined ? [] : dropTo(as)), ...cmd]
    return ['ip', 'netns', 'exec', this.netns, ...dropTo(as), ...WITHOUT_HOOKS, ...readableArgv(cmd)]
  }

  exec(cmd: readonly string[], opts: ExecOptions = {}): Promise<ExecResult> {
    const [bin, ...args] = this.command(cmd, opts)
    return run(bin!, args, opts)
  }

  /** Like exec, but a non-zero exit is an error that shows stderr. */
  async mustExec(cmd: readonly string[], opts: ExecOptions = {}): Promise<string> {
    const res = await this.exec(cmd, opts)
    if (res.code !== 0) throw new Error(`[${this.name}] ${cmd.join(' ')} failed (exit ${res.code}): ${res.stderr.trim()}`)
    return res.stdout
  }

  spawn(cmd: readonly string[], opts: SpawnOptions = {}): HostProcess {
    const [bin, ...args] = this.command(cmd, opts)
    const child = spawn(bin!, args, { detached: true, stdio: ['ignore', 'pipe', 'pipe'], env: { ...process.env, ...opts.env }, cwd: opts.cwd ?? (otherUid(opts) ? '/' : undefined) })
    const proc = new HostProcess(child)
    this.#net.adopt(proc)
    return proc
  }
}

export interface TestNetOptions {
  /** Host names, or how many hosts (named h1..hN). */
  readonly hosts: number | readonly string[]
}

const live = new Set<TestNet>()
let hooksInstalled = false
let leftoversCleaned = false

export class TestNet {
  readonly runId: string
  readonly switchNs: string
  readonly #hosts: TestHost[] = []
  readonly #namespaces: string[] = []
  readonly #processes = new Set<HostProcess>()
  readonly #users: string[] = []
  #destroyed = false
  #destroying: Promise<void> | undefined

  private constructor(runId: string) {
    this.runId = runId
    this.switchNs = `${runId}-sw`
  }

  #containers = 0

  get hosts(): readonly TestHost[] {
    return this.#hosts
  }

  host(name: string): TestHost {
    const h = this.#hosts.find((x) => x.name === name)
    if (!h) throw new Error(`no test host "${name}" (hosts: ${this.#hosts.map((x) => x.name).join(', ')})`)
    return h
  }

  static async create(opts: TestNetOptions): Promise<TestNet> {
    installHooks()
    if (!leftoversCleaned) {
      leftoversCleaned = true
      await cleanupLeftovers()
    }
    const names = typeof opts.hosts === 'number' ? Array.from({ length: opts.hosts }, (_, i) => `h${i + 1}`) : [...opts.hosts]
    if (names.length < 1 || names.length > 200) throw new Error(`a test net has 1 to 200 hosts, not ${names.length}`)
    const net = new TestNet(newRunId())
    // Registered before anything exists, so a failure halfway through still cleans up.
    live.add(net)
    try {
      await net.#build(names)
    } catch (err) {
      await net.destroy()
      throw err
    }
    return net
  }

  async #build(names: readonly string[]): Promise<void> {
    const sw = this.switchNs
    this.#namespaces.push(sw)
    await mustRun('ip', ['netns', 'add', sw])
    await mustRun('ip', ['-n', sw, 'link', 'set', 'lo', 'up'])
    // A new namespace copies the host's forwarding settings: turn forwarding off explicitly,
    // so the switch can never route a test packet anywhere (it has no uplink either).
    await mustRun('ip', ['netns', 'exec', sw, 'sysctl', '-q', '-w', 'net.ipv4.ip_forward=0', 'net.ipv6.conf.all.forwarding=0'])
    await mustRun('ip', ['-n', sw, 'link', 'add', 'br0', 'type', 'bridge'])
    await mustRun('ip', ['-n', sw, 'link', 'set', 'br0', 'up'])
    await mustRun('ip', ['-n', sw, 'addr', 'add', `${GATEWAY4}/24`, 'dev', 'br0'])
    await mustRun('ip', ['-n', sw, 'addr', 'add', `${GATEWAY6}/64`, 'dev', 'br0', 'nodad'])
    for (const [i, name] of names.entries()) {
      const ns = `${this.runId}-${name}`
      this.#namespaces.push(ns)
      const host = new TestHost(this, name, ns, i + 1)
      await mustRun('ip', ['netns', 'add', ns])
      await mustRun('ip', ['-n', sw, 'link', 'add', `v${i + 1}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
      await mustRun('ip', ['-n', sw, 'link', 'set', `v${i + 1}`, 'master', 'br0', 'up'])
      await mustRun('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
      await mustRun('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
      await mustRun('ip', ['-n', ns, 'addr', 'add', `${host.ipv4}/24`, 'dev', 'eth0'])
      await mustRun('ip', ['-n', ns, 'addr', 'add', `${host.ipv6}/64`, 'dev', 'eth0', 'nodad'])
      await mustRun('ip', ['-n', ns, 'route', 'add', 'default', 'via', GATEWAY4])
      await mustRun('ip', ['-n', ns, '-6', 'route', 'add', 'default', 'via', GATEWAY6])
      this.#hosts.push(host)
    }
  }

  /**
   * A container on `host`: its own network namespace behind a veth, `172.30.<n>.2/24` inside
   * with a default route via the host's end (`172.30.<n>.1`), the way a bridge-networked
   * container reaches its host. Torn down with the net. Returns a TestHost to run commands in.
   */
  async container(host: TestHost, name: string): Promise<TestHost & { readonly address: string }> {
    const n = this.#containers++
    const ns = `${host.netns}-${name}`
    this.#namespaces.push(ns)
    await mustRun('ip', ['netns', 'add', ns])
    await mustRun('ip', ['-n', host.netns, 'link', 'add', `ct${n}`, 'type', 'veth', 'peer', 'name', 'eth0', 'netns', ns])
    await mustRun('ip', ['-n', host.netns, 'addr', 'add', `172.30.${n}.1/24`, 'dev', `ct${n}`])
    await mustRun('ip', ['-n', host.netns, 'link', 'set', `ct${n}`, 'up'])
    await mustRun('ip', ['-n', ns, 'link', 'set', 'lo', 'up'])
    await mustRun('ip', ['-n', ns, 'addr', 'add', `172.30.${n}.2/24`, 'dev', 'eth0'])
    await mustRun('ip', ['-n', ns, 'link', 'set', 'eth0', 'up'])
    await mustRun('ip', ['-n', ns, 'route', 'add', 'default', 'via', `172.30.${n}.1`])
    return Object.assign(new TestHost(this, `${host.name}/${name}`, ns, 200 + n), { address: `172.30.${n}.2` })
  }

  /** @internal HostProcess registration, so destroy() can stop it. */
  adopt(proc: HostProcess): void {
    this.#processes.add(proc)
    void proc.exited.then(() => this.#processes.delete(proc))
  }

  /** Creates a system user for this run (removed on destroy). */
  async user(): Promise<TestUser> {
    const name = userName(this.runId, this.#users.length + 1)
    this.#users.push(name)
    // useradd takes a lock on /etc/passwd; parallel test files can hold it briefly.
    for (let attempt = 0; ; attempt++) {
      const res = await run('useradd', ['--system', '--no-create-home', '--shell', '/usr/sbin/nologin', '--user-group', name])
      if (res.code === 0) break
      if (attempt >= 30 || !/lock|try again/i.test(res.stderr)) throw new Error(`useradd ${name} failed (exit ${res.code}): ${res.stderr.trim()}`)
      await new Promise((r) => setTimeout(r, 50 + attempt * 20))
    }
    const uid = Number((await mustRun('id', ['-u', name])).trim())
    const gid = Number((await mustRun('id', ['-g', name])).trim())
    return { name, uid, gid }
  }

  /** Stops every process (SIGTERM, then SIGKILL), deletes every namespace and user. Idempotent. */
  async destroy(): Promise<void> {
    if (this.#destroying) return this.#destroying
    this.#destroying = (async () => {
      await Promise.all([...this.#processes].map((p) => p.stop('SIGTERM', 2000)))
      for (const ns of [...this.#namespaces].reverse()) await deleteNamespace(ns)
      for (const u of this.#users) await deleteUser(u)
      this.#destroyed = true
      live.delete(this)
    })()
    return this.#destroying
  }

  /**
   * The exit-path version of destroy(): synchronous, best effort, never throws. It also runs
   * while an async destroy() is still under way (a Ctrl-C during the cleanup), finishing it.
   */
  destroySync(): void {
    if (this.#destroyed) return
    this.#destroyed = true
    for (const p of this.#processes) killGroup(p.pid, 'SIGKILL')
    for (const ns of [...this.#namespaces].reverse()) deleteNamespaceSync(ns)
    for (const u of this.#users) { runSync('userdel', [u]); runSync('groupdel', [u]) }
    live.delete(this)
  }
}

/** Runs `fn` with a fresh test net and always destroys it, whatever `fn` does. */
export async function withTestNet<T>(opts: TestNetOptions, fn: (net: TestNet) => Promise<T>): Promise<T> {
  const net = await TestNet.create(opts)
  try {
    return await fn(net)
  } finally {
    await net.destroy()
  }
}

/** For tap: the net is destroyed in the test's teardown, which runs even when the test throws. */
export async function testNet(t: { teardown(fn: () => unknown): void }, opts: TestNetOptions): Promise<TestNet> {
  const net = await TestNet.create(opts)
  t.teardown(() => net.destroy())
  return net
}

/** Removes namespaces and users of earlier runs whose owning process is gone. */
export async function cleanupLeftovers(): Promise<{ namespaces: string[]; users: string[] }> {
  const namespaces: string[] = []
  const users: string[] = []
  const list = (await run('ip', ['netns', 'list'])).stdout
  for (const line of list.split('\n')) {
    const ns = line.split(' ')[0] ?? ''
    const pid = ownerPid(ns)
    if (pid !== undefined && pid !== process.pid && !isAlive(pid)) {
      await deleteNamespace(ns)
      namespaces.push(ns)
    }
  }
  for (const line of readFileSync('/etc/passwd', 'utf8').split('\n')) {
    const name = line.split(':')[0] ?? ''
    const pid = name.startsWith(PREFIX) ? ownerPid(name) : undefined
    if (pid !== undefined && pid !== process.pid && !isAlive(pid)) {
      await deleteUser(name)
      users.push(name)
    }
  }
  return { namespaces, users }
}

async function deleteNamespace(ns: string): Promise<void> {
  // A namespace outlives `ip netns del` while a process is still inside it: kill those first.
  const pids = (await run('ip', ['netns', 'pids', ns])).stdout.split(/\s+/).filter(Boolean).map(Number)
  for (const pid of pids) killPid(pid, 'SIGKILL')
  await run('ip', ['netns', 'del', ns])
}

function deleteNamespaceSync(ns: string): void {
  for (const pid of runSync('ip', ['netns', 'pids', ns]).split(/\s+/).filter(Boolean).map(Number)) killPid(pid, 'SIGKILL')
  runSync('ip', ['netns', 'del', ns])
}

async function deleteUser(name: string): Promise<void> {
  for (let attempt = 0; attempt < 30; attempt++) {
    const res = await run('userdel', [name])
    // 6: no such user (already gone); anything but a lock is final.
    if (res.code === 0 || res.code === 6 || !/lock|try again/i.test(res.stderr)) break
    await new Promise((r) => setTimeout(r, 50 + attempt * 20))
  }
  await run('groupdel', [name])
}

function killGroup(pid: number, signal: NodeJS.Signals): void {
  if (pid <= 0) return
  try { process.kill(-pid, signal) } catch { killPid(pid, signal) }
}

function killPid(pid: number, signal: NodeJS.Signals): void {
  try { process.kill(pid, signal) } catch { /* already gone */ }
}

function installHooks(): void {
  if (hooksInstalled) return
  hooksInstalled = true
  process.on('exit', () => {
    for (const net of [...live]) net.destroySync()
  })
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.on(signal, () => {
      for (const net of [...live]) net.destroySync()
      process.exit(128 + ({ SIGHUP: 1, SIGINT: 2, SIGTERM: 15 } as const)[signal])
    })
  }
}
