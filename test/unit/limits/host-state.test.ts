// The host's rate-limit buckets: created full, refilled at tokensPerFill per fillInterval,
// retry-after from the time to the next token, one bucket per key, and full buckets swept
// once there are many (so callers that come and go leave nothing behind).
import t from 'tap'
import { LocalHostState } from '../../../daemon/limits/host-state.ts'

const SPEC = { maxTokens: 2, tokensPerFill: 1, fillIntervalMs: 4000 }

t.test('a bucket: full at first, refilled at its rate, retry-after rounded up to whole seconds', async (t) => {
  let now = 0
  const state = new LocalHostState(() => now)
  const b = state.bucket('k', SPEC)
  t.ok(b.take())
  t.ok(b.take())
  t.notOk(b.take(), 'empty after maxTokens')
  t.equal(b.retryAfterSeconds(), 4, 'one token comes after 4 s')
  now = 1000
  t.equal(b.retryAfterSeconds(), 3)
  now = 4000
  t.ok(b.take(), 'refilled after fillInterval')
  t.equal(state.bucket('k', SPEC).take(), false, 'the same key is the same bucket')
  t.ok(state.bucket('other', SPEC).take(), 'another key has its own')
  now = 4100
  t.equal(state.bucket('k', SPEC).retryAfterSeconds(), 4, 'never less than 1, rounded up')
})

t.test('full buckets are swept when there are many; a bucket in use is kept', async (t) => {
  let now = 0
  const state = new LocalHostState(() => now)
  state.bucket('busy', SPEC).take()
  for (let i = 0; i < 9_999; i++) state.bucket(`idle-${i}`, SPEC)
  t.equal(state.size, 10_000)
  state.bucket('new', SPEC)
  t.equal(state.size, 2, 'only the bucket that is not full, and the new one, are left')
  now = 8000
  t.notOk(state.bucket('busy', SPEC).take() && state.bucket('busy', SPEC).take() && state.bucket('busy', SPEC).take(), 'the kept bucket still counts what it gave')
})

t.test('a count: acquire up to the limit, each release once, zero counts forgotten', async (t) => {
  const state = new LocalHostState()
  const c = state.count('svc')
  const first = c.acquire(2)
  const second = c.acquire(2)
  t.ok(first && second)
  t.equal(c.acquire(2), undefined, 'full at the limit')
  t.equal(c.value, 2)
  first!()
  first!()
  t.equal(c.value, 1, 'a release counts once')
  t.ok(state.count('svc').acquire(2), 'the same key is the same count')
  t.equal(state.count('other').value, 0)
})
