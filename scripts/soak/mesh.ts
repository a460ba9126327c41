// The soak's three namespace hosts (issue #15), as the demo's: node-a runs checkout (uid 2001),
// node-b payments-v1 and node-c payments-v2 (uid 2002; HTTP on 8080, the TCP ledger on 7000),
// each host the real `hostmesh run` as installed (scripts/bench/installed.ts) with
// policy/examples, under the systemd stand-in (scripts/netns/service-manager.py) as the units
// configure it: hostmesh.socket's ports passed in, the fd store, the watchdog. The loads go from checkout to the payments Service VIP: HTTP through the
// L7 path (the canary HTTPRoute) and TCP through the L4 path (the ledger's TCPRoute).
import { cpSync, mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { parseMetrics, total } from '../demo/telemetry.ts'
import type { HostProcess, TestHost, TestNet } from '../netns/hosts.ts'
import { meshNodeConfigs, untilReady } from '../netns/mesh-nodes.ts'
import { buildDist, unitEnvironment, withoutUnitEnvironment } from '../bench/installed.ts'

const here = (f: string): string => new URL(f, import.meta.url).pathname
const EXAMPLES = here('../../policy/examples/')
const HTTP_SERVER = here('../netns/workloads/http-server.ts')
const TCP_SERVER = here('../netns/workloads/identify-server.ts')
const RATE_CLIENT = here('../bench/rate-client.ts')
const STEADY_CLIENT = here('../netns/workloads/steady-client.ts')
const SLOW_CLIENT = here('../netns/workloads/slow-client.ts')
const MANAGER = here('../netns/service-manager.py')
const NODE = process.execPath
export const HOSTS = ['node-a', 'node-b', 'node-c'] as const
const CHECKOUT = { uid: 2001, gid: 2001 }
const PAYMENTS = { uid: 2002, gid: 2002 }
const VIP = '10.96.0.20'
const VERSION: Record<string, string> = { 'node-b': 'v1', 'node-c': 'v2' }

/** What an HTTP load reported (scripts/bench/rate-client.ts). */
export interface HttpLoad { requests: number; failed: number; non2xx: number; rate: number; p50ms: number; p99ms: number; maxms: number }
/** What a TCP load reported (scripts/netns/workloads/steady-client.ts). */
export interface TcpLoad { ok: number; refused: number; reset: number; timeout: number; short: number; other: number; errors: string[]; slowestMs: number }

/** What /certs says (docs/certs.md), as far as the soak reads it. */
export interface CertsView {
  bundle: { roots: { serial: string; sha256: string }[] }
  nodeCa: { serial: string } | null
  lastError: string | null
  identities: { identity: string; state: string; serial: string; issuer: string }[]
}

export interface SoakMeshOptions {
  /** HTTP requests per second from checkout, open loop. */
  readonly httpRate: number
  readonly httpConnections: number
  /** TCP connections kept going from checkout, each pausing this long between connections. */
  readonly tcpConcurrency: number
  readonly tcpPauseMs: number
}

export class SoakMesh {
  readonly dir: string
  readonly policyDir: string
  readonly net: TestNet
  readonly #opts: SoakMeshOptions
  readonly #configs: Map<string, string>
  readonly #cli: string
  readonly #env: NodeJS.ProcessEnv
  readonly daemons = new Map<string, HostProcess>()
  /** The payments HTTP servers, by host (node-b: v1, node-c: v2). */
  readonly httpServers = new Map<string, HostProcess>()

  private constructor(net: TestNet, dir: string, configs: Map<string, string>, cli: string, opts: SoakMeshOptions) {
    this.net = net
    this.dir = dir
    this.policyDir = join(dir, 'policy.d')
    this.#configs = configs
    this.#cli = cli
    this.#env = { ...withoutUnitEnvironment(), ...unitEnvironment() }
    this.#opts = opts
  }

  static async start(net: TestNet, opts: SoakMeshOptions): Promise<SoakMesh> {
    const dir = mkdtempSync(join(tmpdir(), 'hostmesh-soak-'))
    cpSync(EXAMPLES, join(dir, 'policy.d'), { recursive: true })
    const configs = await meshNodeConfigs(net.hosts, dir, { policyDir: join(dir, 'policy.d'), extra: 'drainSeconds: 2\nlogLevel: warn\ncertificates: {leafTtl: 1m}\nhbone: {keepaliveInterval: 2s, keepaliveTimeout: 2s}\n' })
    const mesh = new SoakMesh(net, dir, configs, await buildDist(join(dir, 'pkg')), opts)
    for (const name of HOSTS) mesh.daemons.set(name, mesh.#spawnDaemon(net.host(name)))
    for (const name of HOSTS) await untilReady(net.host(name), mesh.daemons.get(name)!)
    for (const host of ['node-b', 'node-c']) {
      await mesh.startHttpServer(host)
      await net.host(host).spawn([NODE, TCP_SERVER, `payments-${VERSION[host]}`, '7000'], PAYMENTS).waitFor(/listening/)
    }
    return mesh
  }

  /** Starts (or starts again) the payments HTTP server on `host`. */
  async startHttpServer(host: string): Promise<HostProcess> {
    const p = this.net.host(host).spawn([NODE, HTTP_SERVER, `payments-${VERSION[host]}`, '8080'], PAYMENTS)
    await p.waitFor(/listening/)
    this.httpServers.set(host, p)
    return p
  }

  /** The fraud scorer (node-c, uid 2003, HTTP on 9090), which the loads never call. */
  async startFraudServer(): Promise<HostProcess> {
    const p = this.net.host('node-c').spawn([NODE, HTTP_SERVER, 'fraud', '9090'], { uid: 2003, gid: 2003 })
    await p.waitFor(/listening/)
    return p
  }

  /**
   * An HTTP server on `host` as `as`, on `port` (the hostile rows' plaintext target). It takes
   * heads up to the mesh's own limit (60 KiB; node's default is 16 KiB), so that a request the
   * mesh passes is answered by the server, not refused by it.
   */
  async startHttpServerAs(host: string, name: string, port: number, as: { uid: number; gid: number }): Promise<HostProcess> {
    const p = this.net.host(host).spawn([NODE, '--max-http-header-size=131072', HTTP_SERVER, name, String(port)], as)
    await p.waitFor(/listening/)
    return p
  }

  /** One HTTP GET from checkout; resolves with the status code (0: no answer). */
  async checkoutGet(url: string): Promise<number> {
    const r = await this.host('node-a').exec(['curl', '-sS', '-m', '10', '-o', '/dev/null', '-w', '%{http_code}', url], { ...CHECKOUT, timeoutMs: 15_000 })
    return Number(r.stdout.trim()) || 0
  }

  /** node-a's view of one service port's endpoints (/clusters). */
  async clusterHosts(cluster: string): Promise<{ address: string; node: string; health: string; ejections: number }[]> {
    const view = JSON.parse(await this.#admin('node-a', '/clusters')) as { clusters: { name: string; hosts: { address: string; node: string; health: string; ejections: number }[] }[] }
    return view.clusters.find((c) => c.name === cluster)?.hosts ?? []
  }

  host(name: string): TestHost {
    return this.net.host(name)
  }

  /** Kills `name`'s daemon and its service manager with SIGKILL, as a host crash would: nothing drains, the kernel closes every socket. */
  async killDaemon(name: string): Promise<void> {
    await this.daemons.get(name)!.stop('SIGKILL')
  }

  /** Starts `name`'s service manager and daemon again and waits for its /ready. */
  async startDaemon(name: string): Promise<void> {
    const d = this.#spawnDaemon(this.host(name))
    this.daemons.set(name, d)
    await untilReady(this.host(name), d)
  }

  /** `systemctl restart`: the stand-in stops the daemon (SIGTERM, drain) and starts it with the same sockets; resolves at its READY=1 with how long the drain and the start took. */
  async restartDaemon(name: string, timeoutMs = 30_000): Promise<{ drainMs: number; startMs: number }> {
    const manager = this.daemons.get(name)!
    const events = (): { event: string; at: number }[] => manager.output.split('\n').filter((l) => l.startsWith('{"event"')).map((l) => JSON.parse(l) as { event: string; at: number })
    const mark = events().length
    const sent = Date.now()
    process.kill(manager.pid, 'SIGUSR1')
    const deadline = Date.now() + timeoutMs
    const since = (): { event: string; at: number }[] => events().slice(mark)
    for (let i = 0; i < timeoutMs / 50 && !since().some((e) => e.event === 'ready') && Date.now() < deadline; i++) await sleep(50)
    const after = since()
    const at = (event: string): number | undefined => after.find((e) => e.event === event)?.at
    const exited = at('exited')
    const ready = at('ready')
    if (ready === undefined || exited === undefined) throw new Error(`${name}: no READY=1 within ${timeoutMs} ms of the restart:\n${manager.output.slice(-2000)}`)
    return { drainMs: exited - sent, startMs: ready - exited }
  }

  /** The daemon under the stand-in, with the units' settings: hostmesh.socket's ListenStream= and ReusePort=, FileDescriptorStoreMax=, WatchdogSec=, CacheDirectory=. */
  #spawnDaemon(h: TestHost): HostProcess {
    return h.spawn(['python3', '-B', MANAGER, '--listen', '127.0.0.1:15000', '--listen', '[::]:15006', '--listen', '[::]:15008', '--reuse-port',
      '--fdstore-max', '512', '--watchdog-usec', '20000000', '--cache-dir', join(this.dir, h.name, 'cache'), '--log', join(this.dir, h.name, 'daemon.log'), '--',
      NODE, this.#cli, 'run', '--config', this.#configs.get(h.name)!], { env: this.#env })
  }

  /** HTTP from checkout to payments for `seconds`, at the mesh's rate; resolves when it is done. */
  async http(seconds: number): Promise<HttpLoad> {
    const out = await this.host('node-a').mustExec([NODE, RATE_CLIENT, `http://${VIP}/pay`, String(this.#opts.httpRate), String(seconds), String(this.#opts.httpConnections)], { ...CHECKOUT, timeoutMs: (seconds + 30) * 1000 })
    return JSON.parse(out.trim().split('\n').at(-1)!) as HttpLoad
  }

  /** TCP connections from checkout to the payments ledger for `seconds`. */
  async tcp(seconds: number): Promise<TcpLoad> {
    const out = await this.host('node-a').mustExec([NODE, STEADY_CLIENT, VIP, '7000', String(seconds * 1000), String(this.#opts.tcpConcurrency), String(this.#opts.tcpPauseMs)], { ...CHECKOUT, timeoutMs: (seconds + 30) * 1000 })
    return JSON.parse(out.trim().split('\n').filter((l) => l.startsWith('{')).at(-1)!) as TcpLoad
  }

  /** GET `path` on the admin port of `name`'s daemon (loopback inside its host). */
  #admin(name: string, path: string): Promise<string> {
    return this.host(name).mustExec(['curl', '-sS', '-m', '5', `http://127.0.0.1:15000${path}`])
  }

  /** One daemon's /metrics, parsed. */
  async metrics(name: string): Promise<ReturnType<typeof parseMetrics>> {
    return parseMetrics(await this.#admin(name, '/metrics'))
  }

  /** node-a's answers to checkout that were not 200, by "code flags" (istio_requests_total, reporter source). */
  async failedAnswers(): Promise<Record<string, number>> {
    const out: Record<string, number> = {}
    for (const s of await this.metrics('node-a')) {
      if (s.name !== 'istio_requests_total' || s.labels.reporter !== 'source' || s.labels.response_code === '200') continue
      const k = `${s.labels.response_code} ${s.labels.response_flags}`
      out[k] = (out[k] ?? 0) + s.value
    }
    return out
  }

  /** Each daemon's RSS in MiB, by host. */
  async rss(): Promise<Record<string, number>> {
    const out: Record<string, number> = {}
    for (const name of HOSTS) out[name] = Math.round(total(await this.metrics(name), 'process_resident_memory_bytes') / 2 ** 20)
    return out
  }

  /** Requests the payments HTTP server on `host` has printed (REQ lines), since it started. */
  requestsServed(host: string): number {
    return this.httpServers.get(host)!.output.split('\n').filter((l) => l.startsWith('REQ ')).length
  }

  /** One daemon's /certs (docs/certs.md). */
  async certs(name: string): Promise<CertsView> {
    return JSON.parse(await this.#admin(name, '/certs')) as CertsView
  }

  /**
   * A long-lived TCP connection from checkout to the ledger (scripts/netns/workloads/slow-client.ts):
   * a 16-byte chunk every `intervalMs` for `seconds`, each echoed back. Resolves with its report.
   */
  async longLived(seconds: number, intervalMs = 250): Promise<{ ok: boolean; sent: number; echoed: number; ms: number; error?: string }> {
    const chunks = Math.ceil((seconds * 1000) / intervalMs)
    const out = await this.host('node-a').mustExec([NODE, SLOW_CLIENT, VIP, '7000', String(chunks), String(intervalMs)], { ...CHECKOUT, timeoutMs: (seconds + 30) * 1000 })
    return JSON.parse(out.trim().split('\n').at(-1)!) as { ok: boolean; sent: number; echoed: number; ms: number; error?: string }
  }

  /** One daemon's /config_dump `policy` (without the compiled snapshot). */
  async policy(name: string): Promise<{ generation: number; hash: string | null; lastError: { reason: string; problems: string[] } | null }> {
    const dump = JSON.parse(await this.#admin(name, '/config_dump')) as { policy: { generation: number; hash: string | null; lastError: { reason: string; problems: string[] } | null } }
    return dump.policy
  }
}
