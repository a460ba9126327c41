// Step 2: a thousand connections to the payments VIP, split by the TCPRoute's weights.
// Counted twice: by the client (which server answered) and by each destination hostmesh
// (istio_tcp_connections_opened_total from checkout's principal), and held to a binomial bound.
import type { Mesh } from '../mesh.ts'
import type { TallyResult } from '../programs.ts'
import { checker, type StepOutcome } from '../step.ts'
import { total, type Sample } from '../telemetry.ts'

// Enough that the 5-sigma band (v2: 10% ± 4.7 points) tells 90/10 from 85/15.
const CONNECTIONS = 1000
const CONCURRENCY = 20
/** Standard deviations allowed: a false alarm about once in 1.7 million runs. */
const SIGMAS = 5

export interface CanaryBackend {
  readonly workload: string
  readonly node: string
  readonly weight: number
  readonly expected: number
  /** Half-width of the accepted range around `expected`. */
  readonly tolerance: number
  readonly observed: number
  readonly countedByDestination: number
}

export interface CanaryResult {
  readonly target: string
  readonly route: string
  readonly connections: number
  readonly failed: number
  readonly backends: readonly CanaryBackend[]
}

const opened = (metrics: ReadonlyMap<string, readonly Sample[]>, principal: string, workload: string): number =>
  [...metrics.values()].reduce((sum, s) => sum + total(s, 'istio_tcp_connections_opened_total', { reporter: 'destination', source_principal: principal, destination_workload: workload }), 0)

export async function canary(mesh: Mesh): Promise<StepOutcome<CanaryResult>> {
  const { caller, canary: c } = mesh.scenario
  const before = await mesh.metrics()
  const tally = await mesh.runAs<TallyResult>(caller, 'tally', [c.vip, String(c.port), String(CONNECTIONS), String(CONCURRENCY)])
  const after = await mesh.metrics()
  const backends = c.backends.map((b): CanaryBackend => {
    const p = b.weight / c.totalWeight
    return {
      workload: b.workload.name, node: b.workload.node, weight: b.weight,
      expected: CONNECTIONS * p, tolerance: SIGMAS * Math.sqrt(CONNECTIONS * p * (1 - p)),
      observed: tally.counts[b.workload.name] ?? 0,
      countedByDestination: opened(after, caller.identity, b.workload.name) - opened(before, caller.identity, b.workload.name),
    }
  })
  const result: CanaryResult = { target: `${c.vip}:${c.port}`, route: c.route, connections: CONNECTIONS, failed: tally.failed, backends }
  const { check, problems } = checker()
  check(tally.failed === 0, `no connection should fail; ${tally.failed} did`)
  const landed = backends.reduce((n, b) => n + b.observed, 0)
  check(landed === CONNECTIONS - tally.failed, `every answer should come from a backend of the route: ${JSON.stringify(tally.counts)}`)
  for (const b of backends) {
    check(Math.abs(b.observed - b.expected) <= b.tolerance, `${b.workload}: ${b.observed} of ${CONNECTIONS} is outside ${b.expected.toFixed(0)} ± ${b.tolerance.toFixed(0)} (weight ${b.weight})`)
    check(b.countedByDestination === b.observed, `${b.node}'s hostmesh should count the ${b.observed} connections to ${b.workload}; it counted ${b.countedByDestination}`)
  }
  const lines = [
    `${caller.name} → ${result.target}, ${CONNECTIONS} connections (${CONCURRENCY} at a time), ${c.route} weights ${backends.map((b) => `${b.workload} ${b.weight}`).join(' / ')}`,
    `split: ${backends.map((b) => `${b.workload} ${b.observed}`).join(' / ')} of ${CONNECTIONS}, ${tally.failed} failed (expected ${backends.map((b) => `${b.expected.toFixed(0)} ± ${b.tolerance.toFixed(0)}`).join(' / ')}, ${SIGMAS}σ)`,
    `counted by the destination hostmeshes as from ${caller.identity}: ${backends.map((b) => `${b.node} ${b.countedByDestination}`).join(', ')}`,
  ]
  return { data: result, lines, problems }
}
