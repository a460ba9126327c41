import t from 'tap'
import { RetryBudget, RetryBudgets } from '../../../daemon/limits/retry-budget.ts'

const settings = (percent: number, minRetriesPerSecond: number, ttlMs = 10_000) => ({ percent, minRetriesPerSecond, ttlMs })

t.test('retries are capped at percent of the requests plus the floor over the window', async (t) => {
  let now = 1_000_000
  const b = new RetryBudget(settings(20, 1), () => now)
  // Floor: 1 retry/s × 10 s = 10 retries with no requests at all.
  t.equal(b.remaining(), 10)
  for (let i = 0; i < 100; i++) b.deposit()
  t.equal(b.remaining(), 30, '20% of 100 requests plus the floor')
  let granted = 0
  for (let i = 0; i < 100; i++) if (b.withdraw()) granted++
  t.equal(granted, 30, 'exactly the budget, no more')
  t.notOk(b.withdraw())
  now += 5_000
  t.notOk(b.withdraw(), 'half a window later the retries still count')
  now += 5_001
  t.equal(b.remaining(), 10, 'a whole window later only the floor is left')
  t.ok(b.withdraw())
})

t.test('the window slides slot by slot', async (t) => {
  let now = 0
  const b = new RetryBudget(settings(100, 0, 1000), () => now)
  for (let i = 0; i < 10; i++) b.deposit()
  now = 500
  for (let i = 0; i < 10; i++) b.deposit()
  t.equal(b.remaining(), 20)
  now = 1050
  t.equal(b.remaining(), 10, 'the first ten fell out, the later ten remain')
  now = 1550
  t.equal(b.remaining(), 0)
})

t.test('percent 0 and no floor: no retries', async (t) => {
  const b = new RetryBudget(settings(0, 0), () => 0)
  for (let i = 0; i < 1000; i++) b.deposit()
  t.notOk(b.withdraw())
})

t.test('one budget per service; a reload with the same values keeps it, a change starts anew', async (t) => {
  const budgets = new RetryBudgets(() => 0)
  t.equal(budgets.remaining('a.t'), null, 'unknown before its first request')
  const a = budgets.for('a.t', settings(20, 1))
  a.deposit()
  t.ok(a.withdraw())
  t.equal(budgets.for('a.t', settings(20, 1)), a, 'equal settings from a new snapshot: the same budget')
  t.equal(budgets.remaining('a.t'), 9)
  const changed = budgets.for('a.t', settings(50, 1))
  t.not(changed, a)
  t.not(budgets.for('b.t', settings(20, 1)), changed)
  budgets.retain(new Set(['b.t']))
  t.equal(budgets.remaining('a.t'), null, 'forgotten with its service')
  t.equal(budgets.remaining('b.t'), 10)
})

t.test('with worker threads each budget gets its share of the floor: together they allow the host\'s', async (t) => {
  const now = 1_000_000
  const threads = [new RetryBudgets(() => now, 1 / 2), new RetryBudgets(() => now, 1 / 2)]
  const budgets = threads.map((b) => b.for('svc', settings(20, 1)))
  t.same(budgets.map((b) => b.remaining()), [5, 5], 'half the 10-retry floor each')
  // The requests split unevenly: each thread's percent is of its own requests.
  for (let i = 0; i < 80; i++) budgets[0]!.deposit()
  for (let i = 0; i < 20; i++) budgets[1]!.deposit()
  let granted = 0
  for (const b of budgets) for (let i = 0; i < 100; i++) if (b.withdraw()) granted++
  t.equal(granted, 30, 'together: 20% of the 100 requests plus one floor, as one thread alone would allow')
})
