// The per-workload limits on the outbound path (#15), in process: what acquire() + release
// costs per connection and per request, and what admits() (the abuse penalty check) costs per
// connection, for both host states. admits() keeps each workload's bucket once looked up; the
// baseline in the same run looks the bucket up every time (the key built, hashed, and for the
// shared table a new handle), as admits() did before. No root needed.
import pino from 'pino'
import { Registry } from 'prom-client'
import { LocalHostState, type HostState } from '../../daemon/limits/host-state.ts'
import { SharedHostState } from '../../daemon/limits/shared-host-state.ts'
import { PENALTY_BUCKET, penaltyKey, WorkloadLimits } from '../../daemon/limits/workload-limits.ts'
import { median as med } from './stats.ts'

const OPS = 1_000_000
const ROUNDS = 5
// 64 in turn: each penalty bucket then gives ≤ 320,000 of its 1,000,000 tokens over the run.
const WORKLOADS = Array.from({ length: 64 }, (_, i) => `shop/w${i}`)

/** ns per call of `op` over OPS calls, after a warm-up of the same size. */
function time(op: (i: number) => unknown): number {
  for (let i = 0; i < OPS; i++) op(i)
  const t0 = process.hrtime.bigint()
  for (let i = 0; i < OPS; i++) op(i)
  return Number(process.hrtime.bigint() - t0) / OPS
}

export async function benchWorkloadLimits(): Promise<void> {
  const states: Record<string, () => HostState> = { SharedHostState: () => new SharedHostState(), LocalHostState: () => new LocalHostState() }
  console.log(`${OPS.toLocaleString('en')} calls per round, median of ${ROUNDS} rounds, ${WORKLOADS.length} workloads in turn; node ${process.version}`)
  console.log('| host state | acquire + release ns | admits() ns (bucket kept) | bucket looked up per call ns (before) | kept / looked up |')
  console.log('|---|---|---|---|---|')
  for (const [name, make] of Object.entries(states)) {
    const state = make()
    const limits = new WorkloadLimits(state, new Registry(), pino({ level: 'silent' }))
    const rows: number[][] = []
    let refused = 0
    // Interleaved, so a drift of the machine's speed moves both sides of the ratio alike.
    for (let r = 0; r < ROUNDS; r++) {
      const acquire = time((i) => limits.acquire(WORKLOADS[i & 63]!, 'connections')?.())
      const kept = time((i) => { if (!limits.admits(WORKLOADS[i & 63]!)) refused++ })
      const lookedUp = time((i) => { if (!state.bucket(penaltyKey(WORKLOADS[i & 63]!), PENALTY_BUCKET).take()) refused++ })
      rows.push([acquire, kept, lookedUp])
    }
    limits.close()
    if (refused > 0) throw new Error(`${name}: ${refused} admits() refused; the bench measured refusals, not the check`)
    const col = (i: number): number => med(rows.map((row) => row[i]!))
    console.log(`| \`${name}\` | ${col(0).toFixed(0)} | ${col(1).toFixed(0)} | ${col(2).toFixed(0)} | ${(col(1) / col(2)).toFixed(2)} |`)
  }
}
