import { setTimeout as sleep } from 'node:timers/promises'
import { pino } from 'pino'
import t, { type Test } from 'tap'
import { LOG_THROTTLE_DEFAULTS, LogThrottle } from '../../../base/throttle.ts'
import { logSink } from '../../helpers/log-sink.ts'

const SUMMARY = 'similar log lines suppressed'

/** A real pino logger into a sink, and a clock the test moves. */
function setup(level: pino.Level = 'info') {
  const sink = logSink()
  const log = pino({ level, base: undefined, timestamp: false, formatters: { level: (label) => ({ level: label }) } }, sink.dest)
  const clock = { now: 1_000_000 }
  const lines = () => sink.lines()
  const summaries = () => lines().filter((l) => l.msg === SUMMARY)
  const others = () => lines().filter((l) => l.msg !== SUMMARY)
  return { log, clock, now: () => clock.now, lines, summaries, others }
}

t.test('defaults: 5 lines per kind per 10 s, 64 kinds', async (t) => {
  t.same(LOG_THROTTLE_DEFAULTS, { perWindow: 5, windowMs: 10_000, maxKinds: 64 })
})

t.test('1,000 lines of one kind in a window: perWindow lines, then one summary with the rest', async (t) => {
  const s = setup()
  const throttle = new LogThrottle(s.log, {}, s.now)
  t.teardown(() => throttle.close())
  for (let i = 0; i < 1000; i++) {
    throttle.warn('hbone-bad-authority', { peer: '10.0.0.9', i }, 'CONNECT refused')
    s.clock.now += 5 // 5 s in all: one window
  }
  t.equal(s.others().length, 5)
  t.same(s.others().map((l) => l.i), [0, 1, 2, 3, 4], 'the first lines of the window are the ones written')
  t.match(s.others()[0], { level: 'warn', peer: '10.0.0.9', msg: 'CONNECT refused' })
  t.equal(s.summaries().length, 0, 'no summary before the window ends')
  s.clock.now = 1_000_000 + 10_000
  throttle.warn('hbone-bad-authority', { i: 1000 }, 'CONNECT refused')
  t.same(s.summaries(), [{ level: 'warn', suppressed: { 'hbone-bad-authority': 995 }, windowSeconds: 10, msg: SUMMARY }])
  t.equal(s.lines().at(-1)?.i, 1000, 'after the window, lines flow again (after the summary)')
})

t.test('kinds are counted separately', async (t) => {
  const s = setup()
  const throttle = new LogThrottle(s.log, { perWindow: 2 }, s.now)
  for (let i = 0; i < 10; i++) throttle.warn('a', { k: 'a' }, 'refused a')
  for (let i = 0; i < 4; i++) throttle.info('b', { k: 'b' }, 'refused b')
  throttle.warn('c', {}, 'refused c')
  t.same(s.others().map((l) => `${l.level}:${l.msg}`), ['warn:refused a', 'warn:refused a', 'info:refused b', 'info:refused b', 'warn:refused c'])
  throttle.close()
  t.same(s.summaries().map((l) => l.suppressed), [{ a: 8, b: 2 }], 'c lost nothing, so it is not in the summary')
})

t.test('after the window, lines flow again; a window with nothing held back writes no summary', async (t) => {
  const s = setup()
  const throttle = new LogThrottle(s.log, { perWindow: 3, windowMs: 1000 }, s.now)
  for (let i = 0; i < 3; i++) throttle.warn('a', { w: 1 }, 'x')
  s.clock.now += 1000
  for (let i = 0; i < 3; i++) throttle.warn('a', { w: 2 }, 'x')
  t.equal(s.others().length, 6)
  t.equal(s.summaries().length, 0)
  throttle.warn('a', { w: 2 }, 'x') // the 4th of window 2: held back
  s.clock.now += 999
  throttle.warn('a', { w: 2 }, 'x')
  t.equal(s.others().length, 6)
  s.clock.now += 1
  throttle.warn('a', { w: 3 }, 'x')
  t.same(s.lines().slice(-2).map((l) => l.msg === SUMMARY ? l.suppressed : l.w), [{ a: 2 }, 3])
  throttle.close()
  t.equal(s.summaries().length, 1, 'close() with nothing held back writes nothing')
})

t.test('at most maxKinds kinds are tracked; the rest share "other"', async (t) => {
  const s = setup()
  const throttle = new LogThrottle(s.log, { perWindow: 1, maxKinds: 3 }, s.now)
  for (let k = 0; k < 1000; k++) for (let i = 0; i < 2; i++) throttle.warn(`kind-${k}`, { k }, 'refused')
  // kind-0..2 get one line each; the other 997 kinds share one budget of 1 line.
  t.equal(s.others().length, 4)
  throttle.close()
  const [summary] = s.summaries()
  t.same(summary?.suppressed, { 'kind-0': 1, 'kind-1': 1, 'kind-2': 1, other: 997 * 2 - 1 })
  t.equal(Object.keys(summary?.suppressed as object).length, 4, 'maxKinds + 1 keys, whatever the callers invent')
})

t.test('a caller kind named "other" adds up with the overflow', async (t) => {
  const s = setup()
  const throttle = new LogThrottle(s.log, { perWindow: 0, maxKinds: 1 }, s.now)
  throttle.warn('other', {}, 'x')
  throttle.warn('b', {}, 'x')
  throttle.close()
  t.same(s.summaries()[0]?.suppressed, { other: 2 })
})

t.test('long kinds are clipped, so a kind cannot make the summary large', async (t) => {
  const s = setup()
  const throttle = new LogThrottle(s.log, { perWindow: 0 }, s.now)
  throttle.warn('k'.repeat(10_000), {}, 'x')
  throttle.close()
  const keys = Object.keys(s.summaries()[0]?.suppressed as object)
  t.equal(keys.length, 1)
  t.ok((keys[0]?.length ?? 0) < 100)
})

t.test('close() flushes the summary of the window so far, and stops the timer', async (t) => {
  const s = setup()
  const throttle = new LogThrottle(s.log, { perWindow: 1, windowMs: 60_000 }, s.now)
  throttle.warn('a', {}, 'x')
  s.clock.now += 2500
  throttle.warn('a', {}, 'x')
  throttle.warn('a', {}, 'x')
  throttle.close()
  t.same(s.summaries().map((l) => [l.suppressed, l.windowSeconds]), [[{ a: 2 }, 2.5]])
  throttle.close()
  t.equal(s.summaries().length, 1, 'a second close() writes nothing')
  throttle.warn('a', {}, 'x')
  t.equal(s.others().length, 2, 'it still works after close(), in a fresh window')
})

t.test('a line below the logger level is neither written nor counted', async (t) => {
  const s = setup('info')
  const throttle = new LogThrottle(s.log, { perWindow: 1 }, s.now)
  for (let i = 0; i < 10; i++) throttle.debug('a', {}, 'x')
  throttle.close()
  t.equal(s.lines().length, 0)
  s.log.level = 'debug'
  for (let i = 0; i < 3; i++) throttle.debug('a', {}, 'x')
  throttle.close()
  t.same(s.lines().map((l) => l.level), ['debug', 'warn'])
})

/** Watches the timers the throttle starts (it calls the global setTimeout). */
function watchTimers(t: Test): { started: NodeJS.Timeout[]; pending: () => number } {
  const real = globalThis.setTimeout
  const started: NodeJS.Timeout[] = []
  globalThis.setTimeout = ((...args: Parameters<typeof real>) => {
    const timer = real(...args)
    started.push(timer)
    return timer
  }) as typeof real
  t.teardown(() => { globalThis.setTimeout = real })
  // A timer that has fired or was cleared is no longer pending: hasRef() stays, so ask the
  // timer itself whether it will still run (_destroyed is set when it fires or is cleared).
  return { started, pending: () => started.filter((x) => !(x as unknown as { _destroyed: boolean })._destroyed).length }
}

t.test('the timer writes the summary at the end of the window, and only runs while something is held back', async (t) => {
  const s = setup()
  const timers = watchTimers(t)
  const throttle = new LogThrottle(s.log, { perWindow: 2, windowMs: 50 })
  t.teardown(() => throttle.close())
  throttle.warn('a', {}, 'x')
  throttle.warn('a', {}, 'x')
  t.equal(timers.started.length, 0, 'nothing held back: no timer')
  throttle.warn('a', {}, 'x')
  throttle.warn('a', {}, 'x')
  t.equal(timers.started.length, 1, 'one timer while something is held back')
  t.equal(timers.started[0]?.hasRef(), false, 'unref()ed: it never keeps the process alive')
  t.equal(timers.pending(), 1)
  await sleep(120) // node:timers/promises: not the global setTimeout that is watched
  t.same(s.summaries().map((l) => l.suppressed), [{ a: 2 }])
  t.ok((s.summaries()[0]?.windowSeconds as number) <= 0.05)
  t.equal(timers.pending(), 0, 'and none after the summary')
  throttle.warn('a', {}, 'x')
  t.equal(s.others().length, 3, 'lines flow again in the next window')
  t.equal(timers.started.length, 1, 'still no new timer: nothing held back')
})

t.test('close() stops the timer', async (t) => {
  const s = setup()
  const timers = watchTimers(t)
  const throttle = new LogThrottle(s.log, { perWindow: 0, windowMs: 3_600_000 })
  throttle.warn('a', {}, 'x')
  t.equal(timers.pending(), 1)
  throttle.close()
  t.equal(timers.pending(), 0)
  t.equal(s.summaries().length, 1)
})

t.test('invalid options are refused', async (t) => {
  const { log } = setup()
  t.throws(() => new LogThrottle(log, { perWindow: -1 }), RangeError)
  t.throws(() => new LogThrottle(log, { windowMs: 0 }), RangeError)
  t.throws(() => new LogThrottle(log, { maxKinds: 1.5 }), RangeError)
  t.doesNotThrow(() => new LogThrottle(log, { perWindow: 0, maxKinds: 0 }).close())
})
