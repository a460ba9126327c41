// MemoryRelief with a chosen RSS, clock and activity: a collection runs only when RSS is a
// threshold above its level at start and the data plane is quiet; one that frees little
// doubles the wait before the next.
import { Registry } from 'prom-client'
import pino from 'pino'
import t from 'tap'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { MemoryRelief } from '../../../daemon/run/memory.ts'
import { loadMallocTrim } from '../../../daemon/run/malloc-trim.ts'

const MB = 2 ** 20

t.test('collects after a burst, only when quiet; backs off while it frees little', async (t) => {
  let rss = 150 * MB
  let now = 0
  const activity = { open: 0, seen: 0 }
  const registry = new Registry()
  const relief = new MemoryRelief({ activity: () => activity, log: pino({ level: 'silent' }), registry, rss: () => rss, now: () => now, everyMs: 5000, thresholdBytes: 64 * MB, quietConnections: 10, utilization: () => 0 })
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

t.test('long-lived connections moving traffic are not quiet: the event loop says so', async (t) => {
  let rss = 150 * MB
  let busy = 0.3
  const relief = new MemoryRelief({ activity: () => ({ open: 16, seen: 16 }), log: pino({ level: 'silent' }), registry: new Registry(), rss: () => rss, now: () => 0, everyMs: 5000, thresholdBytes: 64 * MB, quietConnections: 64, utilization: () => busy })
  relief.start()
  t.teardown(() => relief.stop())
  rss = 400 * MB
  for (let i = 0; i < 5; i++) t.notOk(relief.check(), 'few connections, none new, but the loop is 30% busy: no pause on that traffic')
  busy = 0.001
  t.notOk(relief.check(), 'idle once')
  t.ok(relief.check(), 'idle twice: now it collects')
})

t.test('a loop a few percent busy with admin reads is quiet by default; one at a quarter is not', async (t) => {
  let busy = 0.25
  let rss = 100 * MB
  const r = new MemoryRelief({ activity: () => ({ open: 0, seen: 0 }), log: pino({ level: 'silent' }), registry: new Registry(), rss: () => rss, now: () => 0, thresholdBytes: 64 * MB, utilization: () => busy })
  r.start()
  t.teardown(() => r.stop())
  rss = 300 * MB
  t.notOk(r.check(), 'a quarter busy')
  t.notOk(r.check(), 'still not quiet')
  busy = 0.08
  t.notOk(r.check(), '8% busy (a /metrics read several times a second): quiet once')
  t.ok(r.check(), 'quiet twice: collected')
})

t.test('the default utilization reading is the event loop\'s own', async (t) => {
  // The loop reports no utilization before its first turn (a test file's first moments).
  await new Promise((resolve) => setTimeout(resolve, 20))
  const relief = new MemoryRelief({ activity: () => ({ open: 0, seen: 0 }), log: pino({ level: 'silent' }), registry: new Registry(), rss: () => 1000 * MB, now: () => 0, thresholdBytes: 0, everyMs: 5000 })
  relief.start()
  t.teardown(() => relief.stop())
  // Keep the loop busy before each look: two looks that would be quiet by connections alone
  // would collect at the second.
  for (let look = 0; look < 2; look++) {
    const until = performance.now() + 200
    while (performance.now() < until) { /* busy */ }
    t.notOk(relief.check(), `look ${look + 1}: a busy loop is not quiet`)
  }
})

t.test('a collection a look decided on waits confirmMs, and is dropped if a load began meanwhile', async (t) => {
  let rss = 100 * MB
  let activity = { open: 0, seen: 0 }
  let busy = 0
  const r = new MemoryRelief({ activity: () => activity, log: pino({ level: 'silent' }), registry: new Registry(), rss: () => rss, now: () => 0, everyMs: 5000, thresholdBytes: 64 * MB, quietConnections: 10, confirmMs: 30, utilization: () => busy })
  r.start()
  // The confirmation timer never holds the process: this test does, until it ends.
  const hold = setInterval(() => undefined, 1000)
  t.teardown(() => { r.stop(); clearInterval(hold) })
  rss = 300 * MB
  t.notOk(await r.checkConfirmed(), 'first quiet look')
  const pending = r.checkConfirmed()
  activity = { open: 1, seen: 1 }
  t.notOk(await pending, 'a connection came during the wait: dropped')
  t.notOk(await r.checkConfirmed(), 'and the quiet looks start over')
  const busyNow = r.checkConfirmed()
  busy = 0.5
  t.notOk(await busyNow, 'the loop got busy during the wait: dropped')
  busy = 0
  t.notOk(await r.checkConfirmed(), 'quiet once more')
  t.ok(await r.checkConfirmed(), 'quiet through the wait: collected')
})

t.test('with worker threads, a collection is a round: this thread, then the others, then one trim, and back-off measured after all of it', async (t) => {
  let rss = 100 * MB
  let now = 0
  const trims: number[] = []
  const malloc = { trim: () => { trims.push(rss); return true }, inUse: () => ({ arena: 100 * MB, free: 0 }) }
  let asked = 0
  let answer: (() => void) | undefined
  // The worker threads' part: their collections free what their isolates pooled.
  const others = (): Promise<unknown> => new Promise<void>((resolve) => { asked++; answer = () => { rss -= 150 * MB; resolve() } })
  const r = new MemoryRelief({ activity: () => ({ open: 0, seen: 0 }), log: pino({ level: 'silent' }), registry: new Registry(), rss: () => rss, now: () => now, everyMs: 5000, thresholdBytes: 64 * MB, utilization: () => 0, malloc, others })
  r.start()
  t.teardown(() => r.stop())
  rss = 300 * MB
  t.notOk(r.check(), 'quiet once')
  t.ok(r.check(), 'quiet twice: the round starts')
  t.equal(asked, 1, 'the other threads were asked')
  t.same(trims, [], 'the trim waits for the other threads')
  now += 5000
  t.notOk(r.check(), 'no second round while one is in flight')
  t.equal(asked, 1)
  answer!()
  await new Promise((resolve) => setImmediate(resolve))
  t.same(trims, [150 * MB], 'trimmed once the others collected')
  // The round freed 150 MB of 300: no back-off, and RSS is under the threshold now.
  now += 5000
  t.notOk(r.check(), 'RSS is back: nothing due')
  rss = 300 * MB
  now += 5000
  t.ok(r.check(), 'a round freed enough: the next is not held back')
  t.equal(asked, 2)
  answer!()
})

t.test('a burst this thread did not see (it landed on a worker thread) still cancels the back-off, by the growth of RSS', async (t) => {
  let rss = 100 * MB
  let now = 0
  const r = new MemoryRelief({ activity: () => ({ open: 0, seen: 0 }), log: pino({ level: 'silent' }), registry: new Registry(), rss: () => rss, now: () => now, everyMs: 5000, thresholdBytes: 64 * MB, utilization: () => 0, others: () => Promise.resolve() })
  r.start()
  t.teardown(() => r.stop())
  rss = 300 * MB
  r.check()
  t.ok(r.check(), 'a round')
  await new Promise((resolve) => setImmediate(resolve))
  // It freed nothing: the next waits 10 s.
  now += 5000
  t.notOk(r.check(), 'backing off')
  rss = 340 * MB
  t.ok(r.check(), 'RSS grew half a threshold past the last round: collected without waiting out the back-off')
  await new Promise((resolve) => setImmediate(resolve))
  now += 5000
  t.notOk(r.check(), 'and that round freed nothing either: backing off again')
})

t.test('a round whose other threads fail still trims and ends (a rejected part is logged)', async (t) => {
  let rss = 100 * MB
  const trims: number[] = []
  const lines: string[] = []
  const log = pino({ level: 'warn' }, { write: (l: string) => { lines.push(l) } })
  const r = new MemoryRelief({ activity: () => ({ open: 0, seen: 0 }), log, registry: new Registry(), rss: () => rss, now: () => 0, everyMs: 5000, thresholdBytes: 64 * MB, utilization: () => 0, confirmMs: 1,
    malloc: { trim: () => { trims.push(rss); return true }, inUse: () => ({ arena: 0, free: 0 }) }, others: () => Promise.reject(new Error('thread gone')) })
  r.start()
  const hold = setInterval(() => undefined, 1000)
  t.teardown(() => { r.stop(); clearInterval(hold) })
  rss = 300 * MB
  t.notOk(await r.checkConfirmed(), 'quiet once')
  t.ok(await r.checkConfirmed(), 'the round ran')
  t.equal(trims.length, 1, 'and trimmed')
  t.match(lines.join(''), /thread gone/, 'the failure is logged')
})

t.test('a worker thread collects for a round only if it stayed quiet through confirmMs', async (t) => {
  let activity = { open: 0, seen: 0 }
  let busy = 0
  const registry = new Registry()
  const r = new MemoryRelief({ activity: () => activity, log: pino({ level: 'silent' }), registry, quietConnections: 10, confirmMs: 20, utilization: () => busy })
  const hold = setInterval(() => undefined, 1000)
  t.teardown(() => clearInterval(hold))
  const reliefs = async (): Promise<number> => (await registry.getSingleMetric('hostmesh_memory_reliefs_total')!.get()).values[0]?.value ?? 0
  t.ok(await r.relieveIfQuiet(), 'quiet: collected')
  t.equal(await reliefs(), 1, 'and counted')
  const newConnection = r.relieveIfQuiet()
  activity = { open: 1, seen: 1 }
  t.notOk(await newConnection, 'a connection came meanwhile: no collection')
  const loaded = r.relieveIfQuiet()
  busy = 0.5
  t.notOk(await loaded, 'the loop got busy meanwhile: no collection')
  busy = 0
  activity = { open: 11, seen: 1 }
  t.notOk(await r.relieveIfQuiet(), 'more connections open than quiet allows: no collection')
  t.equal(await reliefs(), 1)
})

t.test('malloc is trimmed after RSS grew a step, when malloc keeps enough free and the loop is not saturated; once per step', async (t) => {
  let rss = 100 * MB
  let free = 0
  let busy = 0.9
  const trims: number[] = []
  // A stand-in for glibc: a trim gives back what was free.
  const malloc = { trim: () => { trims.push(free); rss -= free; free = 0; return true }, inUse: () => ({ arena: 200 * MB, free }) }
  const registry = new Registry()
  const r = new MemoryRelief({ activity: () => ({ open: 16, seen: 16 }), log: pino({ level: 'silent' }), registry, rss: () => rss, now: () => 0, thresholdBytes: 64 * MB, trimStepBytes: 16 * MB, trimUtilization: 0.5, utilization: () => busy, malloc })
  r.start()
  t.teardown(() => r.stop())
  rss = 130 * MB
  free = 20 * MB
  t.notOk(r.check())
  t.same(trims, [], 'the loop is 90% busy: no trim')
  busy = 0.3
  r.check()
  t.same(trims, [20 * MB], 'grew 30 MB, 20 of it free in malloc, loop 30% busy: trimmed')
  free = 12 * MB
  rss += 12 * MB
  r.check()
  t.same(trims, [20 * MB], 'grew 12 MB since the trim: less than a step')
  rss += 6 * MB
  free = 6 * MB
  r.check()
  t.same(trims, [20 * MB], 'a step above the last trim, but malloc keeps less than half a step free: not ours to give')
  free = 10 * MB
  r.check()
  t.same(trims, [20 * MB, 10 * MB], 'a step above, half a step free: trimmed')
  t.equal((await registry.getSingleMetric('hostmesh_memory_trims_total')!.get()).values[0]!.value, 2)
  // A last-resort collection is followed by a trim, whatever the step: it just freed buffers.
  busy = 0
  rss = 200 * MB
  free = 1 * MB
  r.check()
  t.ok(r.check(), 'quiet twice: collected')
  t.equal(trims.length, 3, 'and trimmed after it, though malloc kept less than half a step free')
})

t.test('a trim that gave nothing back is not counted', async (t) => {
  let rss = 100 * MB
  const registry = new Registry()
  const r = new MemoryRelief({ activity: () => ({ open: 0, seen: 0 }), log: pino({ level: 'silent' }), registry, rss: () => rss, now: () => 0, thresholdBytes: 1000 * MB, trimStepBytes: 16 * MB, utilization: () => 0, malloc: { trim: () => false, inUse: () => ({ arena: 100 * MB, free: 50 * MB }) } })
  r.start()
  t.teardown(() => r.stop())
  rss = 130 * MB
  r.check()
  t.equal((await registry.getSingleMetric('hostmesh_memory_trims_total')!.get()).values[0]?.value ?? 0, 0)
})

// glibc only (the addon reports `supported: false` elsewhere, and the daemon warns at start).
const glibc = (process.report.getReport() as { header: { glibcVersionRuntime?: string } }).header.glibcVersionRuntime
t.test('the malloctrim addon is real: freed small buffers go back to the kernel', { skip: glibc ? false : 'NOT glibc: malloc_trim does not exist here' }, async (t) => {
  const malloc = loadMallocTrim()
  if (malloc instanceof Error) throw malloc
  setFlagsFromString('--expose-gc')
  const gc = runInNewContext('gc') as () => void
  // Below glibc's mmap threshold each buffer is a malloc chunk; one in 64 stays, pinning the
  // arena's top so an ordinary free() cannot shrink it.
  let kept: Buffer[] = []
  let junk: Buffer[] | undefined = []
  for (let i = 0; i < 60_000; i++) (i % 64 === 0 ? kept : junk).push(Buffer.allocUnsafeSlow(2000))
  junk = undefined
  gc()
  gc()
  const free = malloc.inUse().free
  t.ok(free > 50 * MB, `malloc keeps ${Math.round(free / MB)} MB freed`)
  const before = process.memoryUsage.rss()
  t.equal(malloc.trim(), true, 'trim released memory')
  const after = process.memoryUsage.rss()
  t.ok(before - after > 40 * MB, `RSS ${Math.round(before / MB)} → ${Math.round(after / MB)} MB`)
  // The survivors were what kept the freed chunks below the arena's top: still there.
  t.ok(kept.every((b) => b.length === 2000))
  kept = []
})
