// What plaintext sources may hold at :15006, counted for the host (worker threads share the
// HostState). Anyone who can reach a workload's port can open connections there, so a flood
// from one address must not take every slot, and all of them together must not take every fd.
import type { HostState } from './host-state.ts'

export interface PlaintextLimits {
  /** Connections at :15006 in all. */
  readonly maxConnections: number
  /** Per source address. */
  readonly maxConnectionsPerSource: number
}

/** The hbone defaults' sizes: the service unit's LimitNOFILE holds both ports full with room to spare. */
export const DEFAULT_PLAINTEXT_LIMITS: PlaintextLimits = Object.freeze({ maxConnections: 4096, maxConnectionsPerSource: 1024 })

export type PlaintextRefusal = 'connections' | 'connections_per_source'

/** A slot for a new connection from `source` (its release is safe to call twice), or why not. */
export function admitPlaintext(host: HostState, limits: PlaintextLimits, source: string): { readonly release: () => void } | { readonly refused: PlaintextRefusal } {
  const all = host.count('plaintext|connections').acquire(limits.maxConnections)
  if (!all) return { refused: 'connections' }
  const mine = host.count(`plaintext|connections|${source}`).acquire(limits.maxConnectionsPerSource)
  if (!mine) {
    all()
    return { refused: 'connections_per_source' }
  }
  let done = false
  return {
    release: () => {
      if (done) return
      done = true
      mine()
      all()
    },
  }
}
