// MemoryRelief with a chosen RSS and activity: a collection runs only when RSS has grown a
// threshold over where it last settled and the data plane is quiet; then not again until it
// has grown another threshold.
import { Registry } from 'prom-client'
import pino from 'pino'
import t from 'tap'
import { MemoryRelief } from '../../../daemon/run/memory.ts'

const MB = 2 ** 20

t.test('collects once after a burst, only when quiet, and not again until RSS grows again', async (t) => {
  let rss = 150 * MB
  const activity = { open: 0, opened: 0 }
  const registry = new Registry()
  const relief = new MemoryRelief({ activity: () => activity, log: pino({ level: 'silent' }), registry, rss: () => rss, thresholdBytes: 64 * MB, quietConnections: 10 })
  relief.start()
  t.teardown(() => relief.stop())
  t.notOk(relief.check(), 'nothing grew')
  // A burst: many connections, RSS up.
  activity.open = 3000
  activity.opened = 9000
  rss = 380 * MB
  t.notOk(relief.check(), 'never under load')
  activity.open = 0
  activity.opened = 9500
  t.notOk(relief.check(), 'none open, but connections were still being opened since the last look')
  t.ok(relief.check(), 'quiet now: one collection')
  t.equal((await registry.getSingleMetric('hostmesh_memory_reliefs_total')!.get()).values[0]!.value, 1)
  // It released nothing (say): RSS stays; no collection again until it grows another threshold.
  t.notOk(relief.check(), 'the level it settled at is the new floor')
  rss = 400 * MB
  t.notOk(relief.check(), 'grown less than the threshold')
  rss = 450 * MB
  t.ok(relief.check(), 'grown a threshold more')
  // RSS coming down on its own lowers the floor.
  rss = 140 * MB
  t.notOk(relief.check())
  rss = 210 * MB
  t.ok(relief.check(), 'measured from the new low')
})

t.test('the collection is real: it runs, and the heap is not larger after it', async (t) => {
  const relief = new MemoryRelief({ activity: () => ({ open: 0, opened: 0 }), log: pino({ level: 'silent' }), registry: new Registry(), rss: () => 0, thresholdBytes: -1 })
  let junk: object[] | undefined = Array.from({ length: 200_000 }, (_, i) => ({ i, s: `x${i}` }))
  const before = process.memoryUsage().heapUsed
  junk = undefined
  t.ok(relief.check())
  t.ok(process.memoryUsage().heapUsed < before, `heap used ${Math.round(before / MB)} MB → ${Math.round(process.memoryUsage().heapUsed / MB)} MB`)
  t.equal(junk, undefined)
})
