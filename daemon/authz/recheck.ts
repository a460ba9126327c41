// The one re-check of an open connection against a new snapshot, for every inbound path
// (:15008 tunnels, :15006 plaintext, TCP or HTTP): the workload must still be local with the
// same identity and port, plaintext needs PERMISSIVE, and AuthorizationPolicy must still
// allow it. An HTTP connection is checked as its CONNECT was (some request could be allowed);
// its requests are then authorized one by one with the snapshot they arrive under.
import type { Protocol, Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'
import { addressKey } from '../../policy/ip.ts'
import { authorize } from './evaluate.ts'

export interface OpenConnection {
  /** The verified peer; absent for plaintext. */
  readonly peer?: string
  readonly workload: WorkloadInfo
  readonly port: number
  readonly protocol: Protocol
}

export type Verdict = { readonly allowed: true } | { readonly allowed: false; readonly reason: string }

export function stillAllowed(snapshot: Snapshot, c: OpenConnection): Verdict {
  const w = snapshot.workloads.get(c.workload.key)
  if (!w || w.node !== snapshot.localNode || w.identity !== c.workload.identity || !w.ports.some((p) => p.port === c.port)) {
    return { allowed: false, reason: `${c.workload.key}:${c.port} is no longer a local workload port` }
  }
  if (c.peer === undefined && w.mtlsMode === 'STRICT') return { allowed: false, reason: 'the workload is STRICT now' }
  const d = authorize(snapshot.authorization.get(w.key), {
    ...(c.peer !== undefined ? { identity: c.peer } : {}),
    port: c.port,
    ...(c.protocol !== 'tcp' ? { stage: 'connect' as const } : {}),
  })
  return d.allowed ? { allowed: true } : { allowed: false, reason: d.reason }
}

/** The protocol the destination reads a local workload port with (absent from the snapshot: tcp). */
export function protocolOf(snapshot: Snapshot, address: string, port: number): Protocol {
  return snapshot.workloadPortProtocol.get(addressKey(address, port)) ?? 'tcp'
}
