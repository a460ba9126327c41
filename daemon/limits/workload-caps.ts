// The per-workload caps' shape and defaults, apart from their enforcement (workload-limits.ts)
// so the node config schema can name them without loading metrics or logging.

export interface WorkloadCaps {
  /** Outbound connections one local workload may hold open at once. */
  readonly maxConnectionsPerWorkload: number
  /** Outbound L7 requests one local workload may have in flight at once. */
  readonly maxRequestsPerWorkload: number
}

/** Envoy's per-listener and per-cluster defaults are 1024; one workload calls several services. */
export const DEFAULT_WORKLOAD_CAPS: WorkloadCaps = { maxConnectionsPerWorkload: 4096, maxRequestsPerWorkload: 4096 }
