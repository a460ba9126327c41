// HostState in shared memory: the same semantics as LocalHostState (buckets created full,
// refilled at their rate, retry-after; counts up to their limit, released once), one view per
// thread on one SharedArrayBuffer, a bounded table whose idle slots are reclaimed, and limits
// that hold across real worker threads hammering the same keys at once.
import { Worker } from 'node:worker_threads'
import t from 'tap'
import { SharedHostState } from '../../../daemon/limits/shared-host-state.ts'

const SPEC = { maxTokens: 2, tokensPerFill: 1, fillIntervalMs: 4000 }

t.test('a bucket: full at first, refilled at its rate, retry-after in whole seconds', async (t) => {
  let now = 1_000_000
  const state = new SharedHostState(16, () => now)
  const b = state.bucket('k', SPEC)
  t.ok(b.take())
  t.ok(b.take())
  t.notOk(b.take(), 'empty after maxTokens')
  t.equal(b.retryAfterSeconds(), 4)
  now += 1000
  t.equal(b.retryAfterSeconds(), 3)
  now += 3000
  t.ok(b.take(), 'refilled after fillInterval')
  t.notOk(state.bucket('k', SPEC).take(), 'the same key is the same bucket')
  t.ok(state.bucket('other', SPEC).take(), 'another key has its own')
})

t.test('a count: up to the limit, each release once; another view on the buffer sees the same', async (t) => {
  const state = new SharedHostState(16)
  const view = new SharedHostState(state.buffer)
  const a = state.count('svc').acquire(2)
  const b = view.count('svc').acquire(2)
  t.ok(a && b)
  t.equal(state.count('svc').acquire(2), undefined, 'full at the limit, whichever view took the slots')
  t.equal(view.count('svc').value, 2)
  a!()
  a!()
  t.equal(state.count('svc').value, 1, 'a release counts once')
  t.equal(state.count('other').value, 0)
  t.throws(() => new SharedHostState(12), /power of two/)
})

t.test('a bounded table: idle slots are reclaimed; past that, new keys share the overflow slot', async (t) => {
  let now = 0
  const state = new SharedHostState(16, () => now)
  const held = state.count('held').acquire(100)
  t.ok(held)
  // Full buckets and zero counts hold nothing: they are reclaimed as the table fills.
  for (let i = 0; i < 200; i++) {
    now += 200
    state.bucket(`idle-${i}`, SPEC)
  }
  t.ok(state.size <= 16, `never more than the table: ${state.size}`)
  t.equal(state.count('held').value, 1, 'a count in use is never reclaimed')
  // Buckets that are not full cannot be reclaimed: 15 of them fill the table.
  const busy = Array.from({ length: 40 }, (_, i) => state.bucket(`busy-${i}`, { maxTokens: 1, tokensPerFill: 1, fillIntervalMs: 3_600_000 }))
  const granted = busy.map((b) => b.take())
  t.ok(granted.filter(Boolean).length < 40, 'past the table the newcomers share one bucket, never an unlimited one')
  t.ok(granted.filter(Boolean).length >= 14, `the keys that have a slot each got their token: ${granted.filter(Boolean).length}`)
})

t.test('four worker threads on one buffer: a count never passes its limit, a bucket never grants more than it holds', async (t) => {
  const state = new SharedHostState(1024)
  const source = `
    const { workerData, parentPort } = require('node:worker_threads')
    import(workerData.module).then(({ SharedHostState }) => {
      const s = new SharedHostState(workerData.buffer)
      const count = s.count('breaker|requests|svc')
      const held = []
      let refused = 0
      let peak = 0
      for (let i = 0; i < 20000; i++) {
        const r = count.acquire(8)
        if (r) { held.push(r); peak = Math.max(peak, count.value) } else refused++
        // Holding up to 10 against a limit of 8: each thread reaches the limit even when the
        // threads happen not to overlap (a busy machine may run them one after another).
        if (held.length > 9 || (!r && held.length > 0)) held.shift()()
      }
      for (const r of held) r()
      let tokens = 0
      const bucket = s.bucket('rl|svc', { maxTokens: 1000, tokensPerFill: 1, fillIntervalMs: 3600000 })
      for (let i = 0; i < 5000; i++) if (bucket.take()) tokens++
      parentPort.postMessage({ refused, peak, tokens })
    })
  `
  const module = new URL('../../../daemon/limits/shared-host-state.ts', import.meta.url).href
  const results = await Promise.all(Array.from({ length: 4 }, () => new Promise<{ refused: number; peak: number; tokens: number }>((resolve, reject) => {
    const w = new Worker(source, { eval: true, workerData: { buffer: state.buffer, module } })
    w.once('message', resolve)
    w.once('error', reject)
  })))
  t.ok(results.every((r) => r.peak <= 8), `no thread ever saw more than 8 in use: ${results.map((r) => r.peak).join(', ')}`)
  t.ok(results.some((r) => r.refused > 0), 'the limit was reached and refused')
  t.equal(state.count('breaker|requests|svc').value, 0, 'every slot came back')
  t.equal(results.reduce((n, r) => n + r.tokens, 0), 1000, 'the four threads together got exactly the bucket\'s 1,000 tokens')
})
