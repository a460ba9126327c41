// Step 3: fraud, whose identity the payments AuthorizationPolicy does not allow, dials the same
// VIP. Its hostmesh carries each connection through mTLS as fraud; the destination hostmesh
// answers 401, counts it (response_flags="UAEX") and logs why; no byte reaches payments.
import type { Mesh } from '../mesh.ts'
import type { TallyResult } from '../programs.ts'
import { uidOf } from '../scenario.ts'
import { checker, type StepOutcome } from '../step.ts'
import { accessLines, total } from '../telemetry.ts'

const ATTEMPTS = 10

export interface DenyResult {
  readonly source: { readonly workload: string; readonly node: string; readonly uid: number; readonly principal: string }
  readonly target: string
  readonly attempts: number
  /** Connections on which a payments server answered. */
  readonly reached: number
  /** Counted by the destination hostmeshes: closed with response_flags="UAEX", by node. */
  readonly refusedByNode: Readonly<Record<string, number>>
  readonly refused: number
  /** The HBONE answers the destinations gave these connections, by status (from their access log). */
  readonly statuses: Readonly<Record<string, number>>
  readonly reasons: readonly string[]
}

export async function deny(mesh: Mesh): Promise<StepOutcome<DenyResult>> {
  const { intruder, canary } = mesh.scenario
  const before = await mesh.metrics()
  const mark = mesh.logMark()
  const tally = await mesh.runAs<TallyResult>(intruder, 'tally', [canary.vip, String(canary.port), String(ATTEMPTS), '5'])
  const after = await mesh.metrics()
  const refusedByNode: Record<string, number> = {}
  const flags = { reporter: 'destination', source_principal: intruder.identity, response_flags: 'UAEX' }
  for (const [node, samples] of after) {
    const n = total(samples, 'istio_tcp_connections_closed_total', flags) - total(before.get(node) ?? [], 'istio_tcp_connections_closed_total', flags)
    if (n > 0) refusedByNode[node] = n
  }
  const statuses: Record<string, number> = {}
  const reasons = new Set<string>()
  // The destinations' access log: one line per connection, the denial's reason in `error`.
  for (const out of mesh.logsSince(mark).values()) {
    for (const l of accessLines(out)) {
      if (l.reporter !== 'destination' || l.src.principal !== intruder.identity) continue
      const status = l.responseFlags === 'UAEX' ? '401' : l.responseFlags === 'UF' ? '503' : '200'
      statuses[status] = (statuses[status] ?? 0) + 1
      if (l.error?.startsWith('denied: ')) reasons.add(l.error.slice('denied: '.length))
    }
  }
  const reached = Object.values(tally.counts).reduce((a, b) => a + b, 0)
  const refused = Object.values(refusedByNode).reduce((a, b) => a + b, 0)
  const result: DenyResult = {
    source: { workload: intruder.name, node: intruder.node, uid: uidOf(intruder), principal: intruder.identity },
    target: `${canary.vip}:${canary.port}`, attempts: ATTEMPTS, reached, refusedByNode, refused, statuses, reasons: [...reasons],
  }
  const { check, problems } = checker()
  check(reached === 0 && tally.failed === ATTEMPTS, `no connection of ${intruder.name} should reach payments: ${JSON.stringify(tally)}`)
  check(refused === ATTEMPTS, `the destinations should count ${ATTEMPTS} denials (UAEX); they counted ${refused}`)
  check(statuses['401'] === ATTEMPTS, `the destinations should answer 401 ${ATTEMPTS} times: ${JSON.stringify(statuses)}`)
  const lines = [
    `${intruder.name} (uid ${uidOf(intruder)} on ${intruder.node}, ${intruder.identity}) → ${result.target}: ${reached} of ${ATTEMPTS} connections reached payments`,
    `refused by the destination hostmeshes: ${Object.entries(statuses).map(([s, n]) => `${s} ×${n}`).join(', ') || 'none'}; counted as UAEX: ${Object.entries(refusedByNode).map(([n, c]) => `${n} ${c}`).join(', ') || 'none'}`,
    ...result.reasons.map((r) => `why: ${r}`),
  ]
  return { data: result, lines, problems }
}
