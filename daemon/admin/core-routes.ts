// The endpoints every daemon has from the start: liveness, readiness and Prometheus metrics.
import type { Metrics } from '../metrics/registry.ts'
import type { Readiness } from '../run/readiness.ts'
import type { AdminServer } from './server.ts'

export function registerCoreRoutes(admin: AdminServer, readiness: Readiness, metrics: Metrics): void {
  // Liveness only says the event loop answers; readiness is the separate, stricter question.
  admin.route('GET', '/healthz', () => ({ status: 200, body: { status: 'ok' } }))
  admin.route('GET', '/ready', () => {
    const s = readiness.status()
    return { status: s.ready ? 200 : 503, body: s }
  })
  admin.route('GET', '/metrics', async () => ({
    status: 200,
    body: await (await metrics.exported()).metrics(),
    contentType: metrics.registry.contentType,
  }))
}
