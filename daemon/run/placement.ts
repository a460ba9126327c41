// Which nodes policy places each identity on: what node binding checks a peer's certificate
// against (a peer must present its identity from a node that runs it). Read from the snapshot
// by the certificate manager's verifier and by each worker thread's.
import type { Snapshot } from '../../policy/snapshot.ts'

/** identity → the nodes policy places workloads with that identity on. */
export function nodesByIdentity(s: Snapshot | undefined): Map<string, Set<string>> {
  const m = new Map<string, Set<string>>()
  for (const w of s?.workloads.values() ?? []) {
    let nodes = m.get(w.identity)
    if (!nodes) m.set(w.identity, (nodes = new Set()))
    nodes.add(w.node)
  }
  return m
}
