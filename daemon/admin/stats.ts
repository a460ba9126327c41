// /stats: the daemon at a glance, as JSON (Envoy's /stats is text; this is the summary an
// operator or `hostmesh status` reads). Uptime, the policy in force and the last reload,
// identities and their expiry, listeners with their open connections, and per service the
// Istio TCP totals with connection and error rates over the last minute. Every number is
// read from the daemon's own state and counters at request time.
import type { Counter, Registry } from 'prom-client'
import type { CertManager, CertView } from '../../certs/manager.ts'
import type { ReloadEvent, PolicyWatcher } from '../../policy/watcher.ts'
import type { ListenerView } from '../listeners/view.ts'
import { RATE_WINDOW_MS, TcpRates, type ServiceStats } from '../metrics/tcp-rates.ts'
import type { AdminServer } from './server.ts'

export interface StatsSources {
  readonly node: string
  readonly policy: PolicyWatcher
  readonly certs: CertManager
  readonly registry: Registry
  /** The metrics the TCP rates are read from: `registry` merged with the worker threads'. */
  readonly exported?: () => Promise<Registry>
  /** The mesh listeners (the admin listener is added here). */
  readonly listeners: () => Promise<ListenerView[]>
}

export interface IdentityStats {
  readonly identity: string
  readonly state: CertView['state']
  readonly notAfter: string | null
  readonly expiresInSeconds: number | null
  readonly nextRenewal: string | null
  readonly lastError: string | null
}

export interface StatsView {
  readonly node: string
  readonly startedAt: string
  readonly uptimeSeconds: number
  readonly policy: {
    readonly generation: number
    readonly hash: string | null
    readonly loadedAt: string | null
    readonly files: number
    /** hostmesh_config_reloads_total by result. */
    readonly reloads: Readonly<Record<string, number>>
    /** The last reload that changed something or failed; null before the first. */
    readonly lastReload: { readonly result: string; readonly reason: string; readonly at: string; readonly durationMs: number; readonly problems: number } | null
    /** The failed reload since the last success, if any (its problems are in /config_dump). */
    readonly lastError: { readonly at: string; readonly reason: string; readonly problems: number } | null
  }
  readonly identities: readonly IdentityStats[]
  readonly listeners: readonly ListenerView[]
  readonly rateWindowSeconds: number
  readonly services: readonly ServiceStats[]
}

export function registerStats(admin: AdminServer, src: StatsSources): void {
  const startedAt = Date.now()
  const rates = new TcpRates(src.exported ?? src.registry)
  rates.start()
  admin.onClose(() => rates.stop())
  // The last reload that changed something or failed; "unchanged" re-reads (every resync)
  // are only counted.
  let lastReload: ReloadEvent | undefined
  src.policy.on('reload', (e) => {
    if (e.result !== 'unchanged') lastReload = e
  })
  admin.route('GET', '/stats', async () => {
    const now = Date.now()
    const s = src.policy.current
    const err = src.policy.lastError
    const [listeners, services, reloads] = await Promise.all([
      Promise.all([admin.view(), src.listeners()]).then(([a, mesh]) => [a, ...mesh]),
      rates.services(),
      reloadCounts(src.registry),
    ])
    const body: StatsView = {
      node: src.node,
      startedAt: new Date(startedAt).toISOString(),
      uptimeSeconds: Math.floor((now - startedAt) / 1000),
      policy: {
        generation: s?.generation ?? 0,
        hash: s?.hash ?? null,
        loadedAt: s?.createdAt ?? null,
        files: s?.files.length ?? 0,
        reloads,
        lastReload: lastReload ? {
          result: lastReload.result, reason: lastReload.reason, at: lastReload.at.toISOString(),
          durationMs: Math.round(lastReload.durationMs * 10) / 10, problems: lastReload.problems.length,
        } : null,
        lastError: err ? { at: err.at, reason: err.reason, problems: err.problems.length } : null,
      },
      identities: src.certs.views().map((v) => ({
        identity: v.identity, state: v.state, notAfter: v.notAfter ?? null,
        expiresInSeconds: v.notAfter ? Math.floor((Date.parse(v.notAfter) - now) / 1000) : null,
        nextRenewal: v.nextRenewal ?? null, lastError: v.lastError ?? null,
      })),
      listeners,
      rateWindowSeconds: RATE_WINDOW_MS / 1000,
      services,
    }
    return { status: 200, body }
  })
}

/** hostmesh_config_reloads_total by result. */
async function reloadCounts(registry: Registry): Promise<Record<string, number>> {
  const counter = registry.getSingleMetric('hostmesh_config_reloads_total') as Counter | undefined
  const out: Record<string, number> = {}
  for (const { value, labels } of (await counter?.get())?.values ?? []) out[String(labels.result)] = value
  return out
}
