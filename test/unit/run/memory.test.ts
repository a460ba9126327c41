// MemoryRelief with a chosen RSS, clock and activity: a collection runs only when RSS is a
// threshold above its level at start and the data plane is quiet; one that frees little
// doubles the wait before the next.
import { Registry } from 'prom-client'
import pino from 'pino'
import t from 'tap'
import { MemoryRelief } from '../../../daemon/run/memory.ts'

const MB = 2 ** 20

t.test('collects after a burst, only when quiet; backs off while it frees little', async (t) => {
  let rss = 150 * MB
  let now = 0
  const activity = { open: 0, seen: 0 }
  const registry = new Registry()
  const relief = new MemoryRelief({ activity: () => activity, log: pino({ level: 'silent' }), registry, rss: () => rss, now: () => now, everyMs: 5000, thresholdBytes: 64 * MB, quietConnections: 10 })
  relief.start()
  t.teardown(() => relief.stop())
  t.notOk(relief.check(), 'nothing grew')
  activity.open = 3000
  activity.seen = 9000
  rss = 380 * MB
  t.notOk(relief.check(), 'never under load')
  activity.open = 0
  activity.seen = 9500
  t.notOk(relief.check(), 'none open, but connections were still being seen since the last look')
  t.notOk(relief.check(), 'quiet once is not enough')
  t.ok(relief.check(), 'quiet twice in a row: one collection')
  t.equal((await registry.getSingleMetric('hostmesh_memory_reliefs_total')!.get()).values[0]!.value, 1)
  // The real collection freed little here (rss stays 380 MB): the next waits 10 s, then 20 s.
  now += 5000
  t.notOk(relief.check(), 'backing off after a collection that freed little')
  now += 5000
  t.ok(relief.check(), 'after 10 s')
  now += 15_000
  t.notOk(relief.check(), 'then the wait is 20 s')
  now += 5000
  t.ok(relief.check())
  // A new burst after a collection: no back-off for it (the wait would now be 40 s).
  activity.seen += 1000
  t.notOk(relief.check(), 'busy')
  now += 5000
  t.notOk(relief.check(), 'quiet once')
  now += 5000
  t.ok(relief.check(), 'quiet twice: collected without waiting out the back-off')
  // RSS back near where it started: nothing to do.
  rss = 160 * MB
  now += 60_000
  t.notOk(relief.check(), 'under the threshold')
  // The level at start goes down with RSS, never up.
  rss = 100 * MB
  t.notOk(relief.check())
  rss = 170 * MB
  t.ok(relief.check(), 'measured from the lowest level seen')
})

t.test('the collection is real: it runs, and the heap is not larger after it', async (t) => {
  const relief = new MemoryRelief({ activity: () => ({ open: 0, seen: 0 }), log: pino({ level: 'silent' }), registry: new Registry(), rss: () => 0, thresholdBytes: -1 })
  let junk: object[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `x${i}` }))
  const before = process.memoryUsage().heapUsed
  junk = undefined
  t.notOk(relief.check(), 'first quiet look')
  t.ok(relief.check())
  t.ok(process.memoryUsage().heapUsed < before, `heap used ${Math.round(before / MB)} MB → ${Math.round(process.memoryUsage().heapUsed / MB)} MB`)
  t.equal(junk, undefined)
})
