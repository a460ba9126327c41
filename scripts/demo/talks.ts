// Who talked to whom, as which identity: every connection the destination hostmeshes logged
// (their access log, one line per connection), grouped by source principal, destination
// workload and outcome. The source principal is the peer certificate's SPIFFE ID.
import { accessLines } from './telemetry.ts'

export interface Talk {
  readonly sourcePrincipal: string
  readonly sourceWorkload: string
  readonly destinationWorkload: string
  readonly destinationPrincipal: string
  readonly node: string
  /** connected, denied (401) or unreachable (503). */
  readonly outcome: 'connected' | 'denied' | 'unreachable'
  readonly connections: number
  readonly bytes: number
}

export function whoTalked(outputs: ReadonlyMap<string, string>): Talk[] {
  const talks = new Map<string, { -readonly [K in keyof Talk]: Talk[K] }>()
  for (const [node, output] of outputs) {
    for (const l of accessLines(output)) {
      if (l.reporter !== 'destination' || l.src.principal === 'unknown') continue
      const outcome = l.responseFlags === 'UAEX' ? 'denied' : l.responseFlags === 'UF' ? 'unreachable' : 'connected'
      const t = { sourcePrincipal: l.src.principal, sourceWorkload: l.src.workload, destinationWorkload: l.dst.workload, destinationPrincipal: l.dst.principal, node, outcome } as const
      const key = JSON.stringify(t)
      const row = talks.get(key) ?? { ...t, connections: 0, bytes: 0 }
      row.connections++
      row.bytes += l.bytesSent + l.bytesReceived
      talks.set(key, row)
    }
  }
  return [...talks.values()].sort((a, b) => a.sourcePrincipal.localeCompare(b.sourcePrincipal) || a.destinationWorkload.localeCompare(b.destinationWorkload) || a.outcome.localeCompare(b.outcome))
}
