// What a soak scenario is (scripts/soak/scenarios.ts lists them): a disturbance run while the
// loads go on, its bar, and the checks that decide its verdict besides the loads' own.
import { renameSync, writeFileSync } from 'node:fs'
import { setTimeout as sleep } from 'node:timers/promises'
import { HOSTS, type HttpLoad, type SoakMesh, type TcpLoad } from './mesh.ts'

export interface Check {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
  /** A bar not met yet, and why (RELIABILITY.md): the row still fails on it; the CI test marks it TODO. */
  readonly todo?: string
}
/** The loads of one measurement and how long they ran. */
export interface Loads { readonly http: HttpLoad; readonly tcp: TcpLoad; readonly seconds: number }

export interface Disturbance { readonly did: string; readonly checks: readonly Check[] }

export interface Scenario {
  readonly name: string
  /** The bar, as issue #15 words it. */
  readonly bar: string
  /** The share of HTTP requests that must succeed during the disturbance (default 1: none may fail). */
  readonly httpSuccess?: number
  /** The share of TCP connections that must succeed during the disturbance (default 1). */
  readonly tcpSuccess?: number
  /** The shortest disturbance that shows what the bar asks (--quick runs at least this long). */
  readonly minSeconds?: number
  /** Checks this scenario does not meet yet, by name, with why: still run, still reported, marked TODO in CI. */
  readonly unmet?: Readonly<Record<string, string>>
  /** Checks of the loads' figures besides the success shares (`before`: the same loads alone, for `before.seconds`). */
  loadChecks?(http: HttpLoad, tcp: TcpLoad, before: Loads): readonly Check[]
  /** Before the loads: the policy the scenario needs, in force on every host. */
  prepare?(mesh: SoakMesh): Promise<void>
  run(mesh: SoakMesh, seconds: number): Promise<Disturbance>
  /** After the row is measured: the mesh as the next scenario expects it. */
  cleanup?(mesh: SoakMesh): Promise<void>
}

/** Writes a file as editors and config managers do: a temporary file renamed over it. */
export function replaceFile(path: string, text: string, mode = 0o644): void {
  const tmp = `${path}.soak-tmp`
  writeFileSync(tmp, text, { mode })
  renameSync(tmp, path)
}

/** Seconds a caller's hostmesh gives a connection to an endpoint (connectionPool.connectTimeout's default). */
export const CONNECT_TIMEOUT_MS = 10_000

/** No request waited, as the client saw it (queueing behind others included), past the connect timeout's default. */
export function httpWaitCheck(http: HttpLoad): Check {
  return { name: 'no HTTP request waited past the connect timeout', ok: http.maxms <= CONNECT_TIMEOUT_MS, detail: `slowest ${Math.round(http.maxms)} ms; ${http.failed + http.non2xx} of ${http.requests} failed (errors ${http.failed}, not 2xx ${http.non2xx})` }
}

/** No TCP connection hung past `connectTimeoutMs` (+ `slackMs` for one that expires exactly then, as every connect to a black hole does). */
export function tcpWaitCheck(tcp: TcpLoad, connectTimeoutMs = CONNECT_TIMEOUT_MS, slackMs = 0): Check {
  return { name: 'no TCP connection hung past the connect timeout', ok: tcp.timeout === 0 && tcp.slowestMs <= connectTimeoutMs + slackMs, detail: `slowest ${Math.round(tcp.slowestMs)} ms (connect timeout ${connectTimeoutMs} ms); refused ${tcp.refused}, reset ${tcp.reset}, short ${tcp.short}, timed out ${tcp.timeout}, other ${tcp.other}, ok ${tcp.ok}` }
}

/** A peer that is gone: callers may fail, but none may wait past the connect timeout. */
export function failFastChecks(http: HttpLoad, tcp: TcpLoad): Check[] {
  return [httpWaitCheck(http), tcpWaitCheck(tcp)]
}

export async function generations(mesh: SoakMesh): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const name of HOSTS) out[name] = (await mesh.policy(name)).generation
  return out
}

/** Applies a policy change and waits (bounded) until every host runs a newer generation without error. */
export async function applyPolicy(mesh: SoakMesh, change: () => void): Promise<void> {
  const before = await generations(mesh)
  change()
  for (let i = 0; i < 100; i++) {
    await sleep(100)
    const now = await Promise.all(HOSTS.map((name) => mesh.policy(name)))
    const bad = now.find((p) => p.lastError !== null)
    if (bad) throw new Error(`the soak's policy change was refused: ${bad.lastError!.problems.slice(0, 3).join('; ')}`)
    if (now.every((p, j) => p.generation > before[HOSTS[j]!]!)) return
  }
  throw new Error('the soak\'s policy change was not in force on every host within 10 s')
}
