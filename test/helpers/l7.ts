// The destination's request path for tests that run the HBONE server alone: the real
// InboundHttp, connecting to workloads over plain TCP as the daemon does.
import { FrontMetrics } from '../../daemon/l7/front-metrics.ts'
import { connect } from 'node:net'
import type { Logger } from '../../base/logger.ts'
import type { Registry } from 'prom-client'
import type { Snapshot } from '../../policy/snapshot.ts'
import { LocalHostState } from '../../daemon/limits/host-state.ts'
import { InboundHttp } from '../../daemon/l7/inbound.ts'
import { RateLimiter } from '../../daemon/l7/rate-limiter.ts'
import { DEFAULT_L7_LIMITS } from '../../daemon/l7/limits.ts'
import { httpMetrics } from '../../daemon/metrics/istio-http.ts'
import type { ConnectionTelemetry } from '../../daemon/telemetry/connection.ts'
import { RequestTelemetry } from '../../daemon/telemetry/request.ts'

export function inboundHttp(snapshot: () => Snapshot | undefined, log: Logger, registry: Registry, connections: ConnectionTelemetry): InboundHttp {
  return new InboundHttp({
    snapshot, log, connections, limits: DEFAULT_L7_LIMITS, front: new FrontMetrics(registry), traceparent: true, limiter: new RateLimiter(new LocalHostState(), registry),
    telemetry: new RequestTelemetry(httpMetrics(registry), log),
    connect: (address, port) => new Promise((resolve, reject) => {
      const s = connect({ host: address, port }, () => resolve(s))
      s.once('error', reject)
    }),
  })
}
