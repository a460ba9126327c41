// Step 4 (last: it stops a server): a service over both payments versions, with no route. Both
// serve; then payments-v1's process is stopped and every connection still succeeds, on the
// survivor: its node's hostmesh answers 503 for the dead one, the caller's tries the next
// endpoint, and outlier detection ejects the dead one.
import type { Mesh } from '../mesh.ts'
import type { TallyResult } from '../programs.ts'
import { checker, type StepOutcome } from '../step.ts'
import { total } from '../telemetry.ts'

const CONNECTIONS = 40

export interface FailoverResult {
  readonly target: string
  readonly stopped: string
  readonly survivors: readonly string[]
  readonly connections: number
  readonly before: TallyResult
  readonly after: TallyResult
  /** 503s (response_flags="UF") from the stopped workload's node while it was down. */
  readonly unreachableAnswers: number
  /** hostmesh_outlier_ejections_total on the caller's node. */
  readonly ejections: number
}

export async function failover(mesh: Mesh): Promise<StepOutcome<FailoverResult>> {
  const { caller, failover: f } = mesh.scenario
  const args = [f.vip, String(f.port), String(CONNECTIONS), '10']
  const before = await mesh.runAs<TallyResult>(caller, 'tally', args)
  const m0 = await mesh.metrics()
  await mesh.servers.get(f.stopped.key)!.stop()
  const after = await mesh.runAs<TallyResult>(caller, 'tally', args)
  const m1 = await mesh.metrics()
  const uf = { reporter: 'destination', destination_workload: f.stopped.name, response_flags: 'UF' }
  const metric = (m: typeof m0, node: string, name: string, labels: Record<string, string>): number => total(m.get(node) ?? [], name, labels)
  const servicePort = [...mesh.snapshot.servicePorts.values()].find((sp) => sp.port === f.port && mesh.snapshot.services.get(sp.service)?.addresses.includes(f.vip))!.key
  const result: FailoverResult = {
    target: `${f.vip}:${f.port}`, stopped: f.stopped.name, survivors: f.survivors.map((w) => w.name), connections: CONNECTIONS, before, after,
    unreachableAnswers: metric(m1, f.stopped.node, 'istio_tcp_connections_closed_total', uf) - metric(m0, f.stopped.node, 'istio_tcp_connections_closed_total', uf),
    ejections: metric(m1, caller.node, 'hostmesh_outlier_ejections_total', { service_port: servicePort }),
  }
  const { check, problems } = checker()
  check(before.failed === 0 && (before.counts[f.stopped.name] ?? 0) > 0, `before the stop, ${f.stopped.name} should serve and nothing fail: ${JSON.stringify(before)}`)
  const survived = result.survivors.reduce((n, w) => n + (after.counts[w] ?? 0), 0)
  check(after.failed === 0 && survived === CONNECTIONS, `with ${f.stopped.name} stopped, all ${CONNECTIONS} connections should reach ${result.survivors.join(', ')}: ${JSON.stringify(after)}`)
  const split = (t: TallyResult): string => `${Object.entries(t.counts).map(([w, n]) => `${w} ${n}`).join(', ') || 'none'} of ${CONNECTIONS}, ${t.failed} failed`
  const lines = [
    `${caller.name} → ${result.target} (a Service over both payments versions, no route)`,
    `before: ${split(before)}`,
    `${f.stopped.name}'s process stopped; after: ${split(after)}`,
    `${f.stopped.node}'s hostmesh answered 503 (workload unreachable) ${result.unreachableAnswers} times and ${caller.node}'s tried the next endpoint; outlier ejections on ${caller.node}: ${result.ejections}`,
  ]
  return { data: result, lines, problems }
}
