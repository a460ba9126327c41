// Per-workload caps (node config outbound.maxConnectionsPerWorkload / maxRequestsPerWorkload):
// each workload and resource is its own count; past the cap acquire() refuses, counts the
// refusal per workload and resource, and logs one line per window however many are refused.
import pino from 'pino'
import { Registry } from 'prom-client'
import t from 'tap'
import { LocalHostState } from '../../../daemon/limits/host-state.ts'
import { SharedHostState } from '../../../daemon/limits/shared-host-state.ts'
import { PENALTY_MS, WorkloadLimits } from '../../../daemon/limits/workload-limits.ts'
import { DEFAULT_WORKLOAD_CAPS } from '../../../daemon/limits/workload-caps.ts'
import { logSink } from '../../helpers/log-sink.ts'

async function refused(registry: Registry, workload: string, resource: string): Promise<number | undefined> {
  const m = await registry.getSingleMetric('hostmesh_workload_limit_refused_total')?.get()
  return m?.values.find((v) => v.labels.workload === workload && v.labels.resource === resource)?.value
}

t.test('up to the cap per workload and resource, then refused, counted and logged once', async (t) => {
  const registry = new Registry()
  const sink = logSink()
  const limits = new WorkloadLimits(new LocalHostState(), registry, pino({ level: 'info' }, sink.dest), { maxConnectionsPerWorkload: 2, maxRequestsPerWorkload: 1 })
  t.teardown(() => limits.close())
  const a1 = limits.acquire('shop/batch', 'connections')
  const a2 = limits.acquire('shop/batch', 'connections')
  t.ok(a1 && a2, 'two connections fit')
  t.equal(limits.current('shop/batch', 'connections'), 2)
  let got = 0
  for (let i = 0; i < 1000; i++) if (limits.acquire('shop/batch', 'connections')) got++
  t.equal(got, 0, 'a thousand more are all refused')
  t.equal(await refused(registry, 'shop/batch', 'connections'), 1000, 'every refusal counted')
  t.ok(limits.acquire('shop/checkout', 'connections'), 'another workload has its own count')
  t.ok(limits.acquire('shop/checkout', 'connections'))
  t.equal(limits.acquire('shop/checkout', 'connections'), undefined, 'and its own cap')
  const r1 = limits.acquire('shop/batch', 'requests')
  t.ok(r1, 'requests are a separate count')
  t.equal(limits.acquire('shop/batch', 'requests'), undefined)
  t.equal(await refused(registry, 'shop/batch', 'requests'), 1)
  const warned = sink.lines().filter((l) => l.level === 40)
  t.equal(warned.length, 3, 'one line per workload and resource in this window, not one per refusal')
  t.match(warned[0], { workload: 'shop/batch', maxConnectionsPerWorkload: 2, msg: /outbound connection refused: the workload holds as many as outbound\.maxConnectionsPerWorkload allows/ })
  t.match(warned[1], { workload: 'shop/checkout', maxConnectionsPerWorkload: 2 })
  t.match(warned[2], { workload: 'shop/batch', maxRequestsPerWorkload: 1, msg: /outbound request refused/ })
  a1!()
  a1!()
  t.equal(limits.current('shop/batch', 'connections'), 1, 'a double release frees one slot only')
  t.ok(limits.acquire('shop/batch', 'connections'), 'a freed slot fits one more')
  t.equal(limits.acquire('shop/batch', 'connections'), undefined, 'and no more')
})

t.test('the defaults are larger than the per-service breaker defaults (1024)', async (t) => {
  t.ok(DEFAULT_WORKLOAD_CAPS.maxConnectionsPerWorkload > 1024 && DEFAULT_WORKLOAD_CAPS.maxRequestsPerWorkload > 1024)
})

t.test('a workload penalized for HTTP/2 abuse is refused new connections for PENALTY_MS, host-wide; the others are not', async (t) => {
  const registry = new Registry()
  let now = 1_000_000
  const state = new LocalHostState(() => now)
  const limits = new WorkloadLimits(state, registry, pino({ level: 'silent' }))
  const other = new WorkloadLimits(state, new Registry(), pino({ level: 'silent' }))
  t.teardown(() => { limits.close(); other.close() })
  for (let i = 0; i < 1000; i++) if (!limits.admits('shop/batch')) return t.fail(`an ordinary workload was refused at connection ${i}`)
  limits.penalize('shop/batch', 'flood')
  t.notOk(limits.admits('shop/batch'), 'penalized')
  t.notOk(other.admits('shop/batch'), 'on every thread that shares the host state')
  t.ok(limits.admits('shop/checkout'), 'another workload is not')
  t.equal(await refused(registry, 'shop/batch', 'abuse'), 1, 'the refusal is counted as abuse')
  now += PENALTY_MS - 500
  t.notOk(limits.admits('shop/batch'), 'still, just before the penalty ends')
  now += 1000
  t.ok(limits.admits('shop/batch'), 'admitted again after it')
})

// admits() keeps each workload's penalty bucket. The host state may sweep the bucket in the
// meantime (it was full: nothing worth keeping), and another thread may then penalize the
// workload through a new slot: the kept bucket must still see that penalty.
t.test('a kept penalty bucket survives the host state sweeping it, across threads', async (t) => {
  let now = 1_000_000
  const a = new SharedHostState(16, () => now)
  const b = new SharedHostState(a.buffer, () => now)
  const limits = new WorkloadLimits(a, new Registry(), pino({ level: 'silent' }))
  const other = new WorkloadLimits(b, new Registry(), pino({ level: 'silent' }))
  t.teardown(() => { limits.close(); other.close() })
  t.ok(limits.admits('shop/batch'), 'admitted: its bucket is kept')
  now += 1000 // full again: reclaimable
  // 64 more keys through 15 usable slots, each bucket of one token: each filler got its token
  // only from a slot of its own (the overflow slot's one token goes once), so full slots,
  // shop/batch's among them, were reclaimed on the way.
  let granted = 0
  for (let i = 0; i < 64; i++) { now += 200; if (a.bucket(`filler-${i}`, { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1000 }).take()) granted++ }
  t.equal(granted, 64, `every filler had a slot of its own: the table was swept (${a.size} slots now used)`)
  other.penalize('shop/batch', 'flood')
  t.notOk(limits.admits('shop/batch'), 'the kept bucket sees the penalty another thread wrote after the sweep')
})

t.test('one thread: a kept bucket swept from the local state still carries its penalty', async (t) => {
  let now = 1_000_000
  const state = new LocalHostState(() => now)
  const limits = new WorkloadLimits(state, new Registry(), pino({ level: 'silent' }))
  t.teardown(() => limits.close())
  t.ok(limits.admits('shop/batch'))
  now += 1000
  for (let i = 0; i < 10_001; i++) state.bucket(`filler-${i}`, { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 1000 })
  t.ok(state.size < 10_001, `the local state swept its full buckets (${state.size} left)`)
  limits.penalize('shop/batch', 'flood')
  t.notOk(limits.admits('shop/batch'), 'penalize() and admits() still share one bucket')
})
