// What the primary and its worker threads say to each other (docs/workers.md). Everything is
// plain data, copied by structured clone; the host-wide limits are the one thing shared.
import type { Snapshot } from '../../policy/snapshot.ts'
import type { ClustersView } from '../admin/clusters.ts'
import type { NodeConfig, LogLevel } from '../config/schema.ts'
import type { ListenerView } from '../listeners/view.ts'
import type { MetricsJson } from '../metrics/registry.ts'
import type { CertsPost } from './posted-certs.ts'

export interface WorkerInit {
  /** 1, 2, …: the primary's own data plane is worker 0. */
  readonly id: number
  readonly config: NodeConfig
  readonly snapshot: Snapshot | undefined
  readonly certs: CertsPost
  /** The SharedHostState table every thread's breakers and rate limits use. */
  readonly hostState: SharedArrayBuffer
  /** Data-path threads in all, the main one included. */
  readonly workers: number
}

/** Questions the admin endpoints ask each worker, and the answers' types. */
export interface Answers {
  readonly metrics: MetricsJson
  readonly clusters: ClustersView
  readonly listeners: ListenerView[]
  /** Whether the thread collected, as its part of a memory relief round (run/memory.ts). */
  readonly relieve: boolean
}
export type Question = keyof Answers

export type ToWorker =
  | { readonly type: 'snapshot'; readonly snapshot: Snapshot }
  | { readonly type: 'certs'; readonly certs: CertsPost }
  | { readonly type: 'logLevel'; readonly level: LogLevel }
  /** Another thread's outlier detection ejected this endpoint (its balancer key). */
  | { readonly type: 'ejected'; readonly endpoint: string; readonly untilMs: number }
  | { readonly type: 'ask'; readonly id: number; readonly question: Question }
  /** Stop accepting and let open connections finish; answered with `drained`. */
  | { readonly type: 'drain' }
  /** The drain deadline passed: close what is left now. */
  | { readonly type: 'destroy' }

export type FromWorker =
  | { readonly type: 'log'; readonly lines: string }
  /** Every listener of the first snapshot is bound. */
  | { readonly type: 'started' }
  | { readonly type: 'failed'; readonly message: string; readonly code?: string }
  /** Whether every wanted listener is bound (a later snapshot's outbound listener may not be). */
  | { readonly type: 'bound'; readonly ok: boolean }
  | { readonly type: 'answer'; readonly id: number; readonly answer: Answers[Question] }
  | { readonly type: 'drained' }
  | { readonly type: 'ejected'; readonly endpoint: string; readonly untilMs: number }
