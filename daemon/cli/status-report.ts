// The text `hostmesh status` prints: what a running daemon's admin port answered, as a few
// aligned sections an operator reads top to bottom. A pure function of the answers.
import type { CertView } from '../../certs/manager.ts'
import type { StatsView } from '../admin/stats.ts'
import type { ServiceStats } from '../metrics/tcp-rates.ts'
import type { ReadinessStatus } from '../run/readiness.ts'

/** The /config_dump `policy` object, without the compiled snapshot. */
export interface PolicyDump {
  readonly dir: string
  readonly generation: number
  readonly hash: string | null
  readonly loadedAt: string | null
  readonly files: readonly { readonly path: string; readonly documents: number }[]
  readonly lastError: { readonly at: string; readonly reason: string; readonly problems: readonly string[] } | null
}

export interface StatusData {
  readonly admin: string
  readonly ready: ReadinessStatus
  readonly stats: StatsView
  readonly certs: { readonly mode: string; readonly certDir: string; readonly identities: readonly CertView[] }
  readonly policy: PolicyDump
}

/** Problems of a failed reload shown before "and N more" (all are in /config_dump). */
const MAX_PROBLEMS = 10

export function renderStatus(d: StatusData, opts: { readonly top: number; readonly now: number }): string {
  const { stats, policy } = d
  const state = d.ready.ready ? 'READY' : d.ready.draining ? 'DRAINING' : `NOT READY, waiting for ${d.ready.waitingFor.join(', ')}`
  const out = [`hostmesh ${stats.node} at ${d.admin}: ${state}; up ${duration(stats.uptimeSeconds)}`, '']

  const since = (iso: string): string => `${duration(Math.max(0, (opts.now - Date.parse(iso)) / 1000))} ago`
  if (policy.generation > 0) {
    out.push(`Policy: generation ${policy.generation} from ${policy.dir} (${plural(policy.files.length, 'file')}, hash ${policy.hash!.slice(0, 12)}), loaded ${since(policy.loadedAt!)}`)
  } else {
    out.push(`Policy: none in force yet (policy dir ${policy.dir})`)
  }
  const last = stats.policy.lastReload
  const counts = Object.entries(stats.policy.reloads).map(([result, n]) => `${n} ${result}`).join(', ')
  if (last) out.push(`  last reload: ${last.result} (${last.reason}) ${since(last.at)}, ${last.durationMs} ms; reloads so far: ${counts}`)
  if (policy.lastError) {
    const e = policy.lastError
    out.push(`  FAILED reload ${since(e.at)} (${e.reason}): ${plural(e.problems.length, 'problem')}; ${policy.generation > 0 ? `generation ${policy.generation} stays in force` : 'no policy in force'}`)
    for (const p of e.problems.slice(0, MAX_PROBLEMS)) out.push(`    ${p}`)
    if (e.problems.length > MAX_PROBLEMS) out.push(`    ... and ${e.problems.length - MAX_PROBLEMS} more (see /config_dump)`)
  }
  out.push('')

  out.push(`Identities (certificates: ${d.certs.mode} mode, ${d.certs.certDir}):`)
  if (stats.identities.length === 0) out.push('  none: no local workload in the policy')
  out.push(...table(stats.identities.map((i) => [
    i.identity, i.state,
    i.expiresInSeconds === null ? '' : i.expiresInSeconds > 0 ? `expires in ${duration(i.expiresInSeconds)} (${i.notAfter})` : `EXPIRED ${duration(-i.expiresInSeconds)} ago`,
    i.lastError ? `last error: ${i.lastError}` : '',
  ])))
  out.push('')

  out.push('Listeners:')
  out.push(...table(stats.listeners.map((l) => [
    l.name, l.addresses.join(' ') || '(not listening)',
    `${l.connections} open${l.tunnels === undefined ? '' : `, ${plural(l.tunnels, 'tunnel')}`}`, l.workload ?? '',
  ])))
  out.push('')

  const window = `last ${stats.rateWindowSeconds} s`
  const services = stats.services.filter((s) => s.rate !== null)
  if (stats.services.length === 0) {
    out.push('Services: no connections yet')
  } else {
    const byRate = [...services].sort((a, b) => b.rate!.connectionsPerSecond - a.rate!.connectionsPerSecond).slice(0, opts.top)
    out.push(`Top services by connection rate (${window}):`)
    out.push(...table(byRate.map(serviceRow)))
    const failing = services.filter((s) => s.rate!.errorsPerSecond > 0)
      .sort((a, b) => (b.rate!.errorRate ?? 0) - (a.rate!.errorRate ?? 0) || b.rate!.errorsPerSecond - a.rate!.errorsPerSecond).slice(0, opts.top)
    out.push(`Top services by error rate (${window}):`)
    if (failing.length === 0) out.push('  none: no refused connections')
    out.push(...table(failing.map(serviceRow)))
  }
  return `${out.join('\n')}\n`
}

function serviceRow(s: ServiceStats): string[] {
  const r = s.rate!
  return [
    s.direction, s.service, `${r.connectionsPerSecond.toFixed(2)}/s`,
    `errors ${r.errorRate === null ? '-' : `${(r.errorRate * 100).toFixed(1)}%`}`,
    `opened ${s.opened}`, `active ${s.active}`, `refused ${s.refused}`,
    `sent ${bytes(s.bytesSent)}`, `received ${bytes(s.bytesReceived)}`,
  ]
}

/** Rows as left-aligned columns, two spaces apart, indented by two; trailing blanks trimmed. */
function table(rows: readonly string[][]): string[] {
  const widths: number[] = []
  for (const row of rows) row.forEach((cell, i) => { widths[i] = Math.max(widths[i] ?? 0, cell.length) })
  return rows.map((row) => `  ${row.map((cell, i) => cell.padEnd(widths[i]!)).join('  ')}`.trimEnd())
}

/** 93784 → "1d2h", 3723 → "1h2m", 62 → "1m2s", 4.2 → "4s": the two largest units. */
export function duration(seconds: number): string {
  const s = Math.floor(seconds)
  const parts: [number, string][] = [[Math.floor(s / 86_400), 'd'], [Math.floor(s / 3600) % 24, 'h'], [Math.floor(s / 60) % 60, 'm'], [s % 60, 's']]
  const first = parts.findIndex(([n]) => n > 0)
  if (first < 0) return '0s'
  return parts.slice(first, first + 2).filter(([n]) => n > 0).map(([n, u]) => `${n}${u}`).join('')
}

function bytes(n: number): string {
  if (n < 1000) return `${n} B`
  const units = ['kB', 'MB', 'GB', 'TB']
  let v = n
  let i = -1
  while (v >= 1000 && i < units.length - 1) { v /= 1000; i++ }
  return `${v.toFixed(1)} ${units[i]}`
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`
}
