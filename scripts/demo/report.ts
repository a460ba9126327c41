// The demo's report: one object (printed as is with --json) and its readable text form.
import type { AdminEntry } from './steps/admin.ts'
import type { CanaryResult } from './steps/canary.ts'
import type { DenyResult } from './steps/deny.ts'
import type { FailoverResult } from './steps/failover.ts'
import type { CallResult, WireResult } from './steps/mtls-call.ts'
import type { StepName, StepReport } from './step.ts'
import type { Talk } from './talks.ts'

export interface DemoHost {
  readonly node: string
  readonly netns: string
  readonly ipv4: string
  /** `name (uid N)` of each workload policy puts on this node. */
  readonly workloads: readonly string[]
}

export interface DemoReport {
  readonly ok: boolean
  readonly failedSteps: readonly StepName[]
  readonly durationMs: number
  readonly runId: string
  /** Every network namespace of the run (the switch and the hosts). */
  readonly namespaces: readonly string[]
  readonly workDir: string
  /** The daemons' and servers' pids: gone once the demo has exited. */
  readonly pids: readonly number[]
  readonly hosts: readonly DemoHost[]
  readonly steps: readonly StepReport[]
  readonly call: CallResult | null
  readonly wire: WireResult | null
  readonly canary: CanaryResult | null
  readonly deny: DenyResult | null
  readonly failover: FailoverResult | null
  readonly talks: readonly Talk[]
  readonly admin: readonly AdminEntry[]
  /** --keep: the mesh stays up until Ctrl-C. */
  readonly kept: boolean
}

const seconds = (ms: number): string => `${(ms / 1000).toFixed(1)} s`

export function renderText(r: DemoReport): string {
  const out: string[] = []
  out.push(`hostmesh demo: ${r.hosts.length} hosts (network namespaces), the real \`hostmesh run\` on each, policy/examples`)
  for (const h of r.hosts) out.push(`  ${h.node}  ${h.ipv4}  ${h.netns}  ${h.workloads.join(', ') || '(no workload)'}`)
  out.push('')
  for (const [i, s] of r.steps.entries()) {
    out.push(`${s.ok ? '✓' : '✗'} ${i}. ${s.title}  (${seconds(s.ms)})`)
    for (const l of s.lines) out.push(`     ${l}`)
    for (const p of s.problems) out.push(`     FAILED: ${p.split('\n').join('\n       ')}`)
  }
  if (r.talks.length > 0) {
    out.push('', 'Who talked to whom, as which identity (the destination hostmeshes\' access logs):')
    const width = Math.max(...r.talks.map((t) => t.sourcePrincipal.length))
    for (const t of r.talks) {
      const what = t.outcome === 'connected' ? `${t.connections} connections, ${t.bytes} bytes` : `${t.connections} ${t.outcome === 'denied' ? 'denied (401)' : 'unreachable (503)'}`
      out.push(`  ${t.sourcePrincipal.padEnd(width)}  →  ${t.destinationWorkload} on ${t.node} (${t.destinationPrincipal}): ${what}`)
    }
  }
  if (r.admin.length > 0) {
    out.push('', `Admin ports (127.0.0.1:15000 inside each host's namespace; these commands work while the demo runs${r.kept ? '' : ': run it with --keep to try them'}):`)
    for (const a of r.admin) out.push(`  ${a.commands[0]}`)
    out.push(`  other paths: ${r.admin[0]!.commands.slice(1).map((c) => c.slice(c.lastIndexOf('/'))).join(' ')} /healthz`)
    out.push(`  a summary of one host: ${r.admin[0]!.status}`)
  }
  out.push('', r.ok ? `Result: every step behaved as expected (${seconds(r.durationMs)}).` : `Result: FAILED at ${r.failedSteps.join(', ')} (${seconds(r.durationMs)}).`)
  return `${out.join('\n')}\n`
}
