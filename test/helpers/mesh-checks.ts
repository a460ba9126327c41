// Checks that hold at the end of any end-to-end run, read from the daemons themselves: every
// connection that was opened was closed exactly once (opened = closed for every series of the
// Istio TCP counters), no HBONE tunnel is left open, and every access-log line carries every
// field docs/mesh.md documents.
import type { Test } from 'tap'
import type { TestHost } from '../../scripts/netns/hosts.ts'
import { logLines, parseMetrics, type Sample } from '../../scripts/demo/telemetry.ts'
import type { StatsView } from '../../daemon/admin/stats.ts'

const admin = async (h: TestHost, path: string): Promise<string> => (await h.exec(['curl', '-sS', '-m', '2', `http://127.0.0.1:15000${path}`])).stdout

/** Series of istio_tcp_connections_opened_total whose closed count differs, as "labels: opened/closed". */
export function unbalanced(samples: readonly Sample[]): string[] {
  const key = (s: Sample): string => JSON.stringify(s.labels)
  const closed = new Map(samples.filter((s) => s.name === 'istio_tcp_connections_closed_total').map((s) => [key(s), s.value]))
  const out: string[] = []
  for (const s of samples) {
    if (s.name !== 'istio_tcp_connections_opened_total') continue
    const c = closed.get(key(s)) ?? 0
    if (c !== s.value) out.push(`${key(s)}: opened ${s.value}, closed ${c}`)
    closed.delete(key(s))
  }
  for (const [k, c] of closed) out.push(`${k}: opened 0, closed ${c}`)
  return out
}

export interface Quiet {
  readonly host: string
  readonly unbalanced: string[]
  readonly tunnels: number
}

/** One host's state now: the unbalanced series and the open HBONE tunnels. */
export async function quiet(h: TestHost): Promise<Quiet> {
  let stats: StatsView | undefined
  try {
    stats = JSON.parse(await admin(h, '/stats')) as StatsView
  } catch { /* no answer within curl's 2 s (a loaded host): not known to be quiet yet */ }
  return { host: h.name, unbalanced: unbalanced(parseMetrics(await admin(h, '/metrics'))), tunnels: stats?.listeners.find((l) => l.name === 'hbone')?.tunnels ?? -1 }
}

/** Waits (up to `timeoutMs`) until every host is quiet, then asserts it, naming what is not. */
export async function assertQuiet(t: Test, hosts: readonly TestHost[], timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  let states: Quiet[] = []
  for (let i = 0; i < 1000; i++) {
    states = await Promise.all(hosts.map(quiet))
    if (states.every((s) => s.unbalanced.length === 0 && s.tunnels === 0) || Date.now() > deadline) break
    await new Promise((r) => setTimeout(r, 200))
  }
  for (const s of states) {
    t.same(s.unbalanced, [], `${s.host}: opened = closed for every series`)
    t.equal(s.tunnels, 0, `${s.host}: no HBONE tunnel open`)
  }
}

/** Every field of an access-log line (docs/mesh.md, "Access log") and what it holds. */
export const ACCESS_FIELDS: Record<string, (v: unknown) => boolean> = {
  access: (v) => v === 'tcp',
  reporter: (v) => v === 'source' || v === 'destination',
  listener: (v) => v === 'outbound' || v === 'hbone' || v === 'inbound-plaintext',
  'src.address': (v) => v === null || (typeof v === 'string' && /:\d+$/.test(v)),
  'src.workload': (v) => typeof v === 'string' && v.length > 0,
  'src.namespace': (v) => typeof v === 'string' && v.length > 0,
  'src.principal': (v) => v === 'unknown' || (typeof v === 'string' && v.startsWith('spiffe://')),
  'dst.address': (v) => v === null || (typeof v === 'string' && /:\d+$/.test(v)),
  'dst.service': (v) => typeof v === 'string' && (/^[a-z0-9-]+\.[a-z0-9-]+$/.test(v) || ['unknown', 'PassthroughCluster', 'BlackHoleCluster'].includes(v)),
  'dst.workload': (v) => typeof v === 'string' && v.length > 0,
  'dst.namespace': (v) => typeof v === 'string' && v.length > 0,
  'dst.principal': (v) => v === 'unknown' || (typeof v === 'string' && v.startsWith('spiffe://')),
  upstream: (v) => v === null || (typeof v === 'string' && /:\d+$/.test(v)),
  security: (v) => v === 'mutual_tls' || v === 'none',
  responseFlags: (v) => typeof v === 'string' && /^(-|UAEX|UF|UO|NR|DC)$/.test(v),
  bytesSent: (v) => Number.isInteger(v) && (v as number) >= 0,
  bytesReceived: (v) => Number.isInteger(v) && (v as number) >= 0,
  durationMs: (v) => Number.isInteger(v) && (v as number) >= 0,
  error: (v) => v === null || typeof v === 'string',
}

/** The access-log lines of a daemon's output. */
export function accessLog(output: string): Record<string, unknown>[] {
  return logLines(output).filter((l) => l.access === 'tcp') as Record<string, unknown>[]
}

/** What is wrong with one access-log line: each missing or ill-typed field. */
export function accessLineProblems(line: Record<string, unknown>): string[] {
  const get = (path: string): unknown => path.split('.').reduce<unknown>((o, k) => (o && typeof o === 'object' ? (o as Record<string, unknown>)[k] : undefined), line)
  return Object.entries(ACCESS_FIELDS).filter(([path, ok]) => !ok(get(path))).map(([path]) => `${path}=${JSON.stringify(get(path))}`)
}
