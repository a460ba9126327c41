// A young-generation collection per RELAY_GC_STEP bytes that HTTP/2 streams handed to a
// splice. Every chunk a stream (or a socket) hands to JavaScript is a new ArrayBuffer outside
// V8's heap. A bulk transfer allocates almost nothing else, so the young generation does not
// fill and no scavenge frees those buffers; V8 counts them as external memory instead, and
// every ~64 MiB of it starts a full mark-compact of the whole heap (the daemon's ~20 MiB of code
// and policy): 15–17 per GB relayed, a quarter of the daemon's CPU in the peer bench's bulk run.
// A scavenge every 16 MiB frees the buffers while they are young, for a fraction of a
// millisecond (the young generation is nearly empty then). `npm run bench -- relay` measures it
// on Node's bare relay: on the host that reads the stream, mark-compacts per GB 16 → 0.5 and
// CPU per GB −30%. Only stream bytes count (splice.ts): counting the socket's bytes as well
// measured worse on the daemons (more mark-compacts on the sending host), though those runs did
// not control which thread carried the connection (below).
// Main thread only, for now: in the daemon's worker threads the same scavenges *raised* the
// mark-compacts (about 20 → 50 per GB on the host reading the stream, in every run where the
// HBONE session landed on a worker thread), although Node's bare relay in a worker thread
// gains as the main thread does (`npm run bench -- relay`, worker-young-16). Until that is
// understood, worker threads relay as before. BENCHMARKS.md "relay" has the runs.
import { isMainThread } from 'node:worker_threads'
import { v8Collect } from '../../base/gc.ts'

export const RELAY_GC_STEP = 16 * 2 ** 20
const ON_THIS_THREAD = isMainThread

let relayed = 0
let forced = 0
let chunks = 0

/** Counts bytes an HTTP/2 stream handed to a splice; every RELAY_GC_STEP of them, one scavenge. */
export function relayedBytes(n: number): void {
  chunks++
  if (!ON_THIS_THREAD) return
  relayed += n
  if (relayed < RELAY_GC_STEP) return
  relayed = 0
  forced++
  v8Collect()({ type: 'minor', execution: 'sync' })
}

/** Scavenges forced so far in this thread (tests, diagnostics). */
export function relayScavenges(): number {
  return forced
}

/**
 * Chunks HTTP/2 streams handed to splices in this thread since start. Traffic on long-lived L4
 * tunnels opens nothing new, so run/memory.ts counts these as activity besides connections.
 */
export function relayedChunks(): number {
  return chunks
}
