// base/stage.ts, which both request paths (and the L4 paths) are lists of: the stages run in
// list order, each deciding whether the rest runs; a stage can act after the rest has finished
// (the response side), a failure reaches the caller, and fork() sends some work down a branch.
import t from 'tap'
import { fork, pipeline, type Stage } from '../../../base/stage.ts'

interface X { readonly trace: string[]; stopAt?: string }

/** A stage that records its name, stops when told to, and records its name again after the rest. */
const named = (name: string, delayMs = 0): Stage<X> => async (x, next) => {
  x.trace.push(name)
  if (delayMs > 0) await new Promise((r) => setTimeout(r, delayMs))
  if (x.stopAt === name) return
  await next()
  x.trace.push(`/${name}`)
}

t.test('stages run in list order, and unwind in reverse', async (t) => {
  const x: X = { trace: [] }
  await pipeline([named('a'), named('b', 5), named('c')])(x)
  t.same(x.trace, ['a', 'b', 'c', '/c', '/b', '/a'])
})

t.test('a stage that does not call next ends the pipeline there', async (t) => {
  const run = pipeline([named('route'), named('filters'), named('upstream')])
  const x: X = { trace: [], stopAt: 'filters' }
  await run(x)
  t.same(x.trace, ['route', 'filters', '/route'])
  const first: X = { trace: [], stopAt: 'route' }
  await run(first)
  t.same(first.trace, ['route'], 'the first stage answering runs nothing else')
})

t.test('one pipeline serves many exchanges at once, each with its own progress', async (t) => {
  const run = pipeline([named('a', 10), named('b')])
  const xs: X[] = [{ trace: [] }, { trace: [], stopAt: 'a' }, { trace: [] }]
  await Promise.all(xs.map(run))
  t.same(xs.map((x) => x.trace), [['a', 'b', '/b', '/a'], ['a'], ['a', 'b', '/b', '/a']])
})

t.test('a synchronous stage can answer or hand on', async (t) => {
  const sync: Stage<X> = (x, next) => { x.trace.push('sync'); if (x.stopAt !== 'sync') return next() }
  const run = pipeline([sync, named('last')])
  const on: X = { trace: [] }
  await run(on)
  t.same(on.trace, ['sync', 'last', '/last'])
  const off: X = { trace: [], stopAt: 'sync' }
  await run(off)
  t.same(off.trace, ['sync'])
})

t.test('an empty pipeline resolves and does nothing', async (t) => {
  const x: X = { trace: [] }
  await pipeline<X>([])(x)
  t.same(x.trace, [])
})

t.test('a stage that throws rejects the run; earlier stages see it, later ones never run', async (t) => {
  const seen: string[] = []
  const guard: Stage<X> = async (_x, next) => {
    try { await next() } catch (err) { seen.push((err as Error).message); throw err }
  }
  const boom: Stage<X> = async () => { throw new Error('boom') }
  const x: X = { trace: [] }
  await t.rejects(pipeline([guard, boom, named('never')])(x), { message: 'boom' })
  t.same(seen, ['boom'])
  t.same(x.trace, [])
})

t.test('a synchronous stage that throws rejects the run too, never throws to the caller', async (t) => {
  const seen: string[] = []
  const guard: Stage<X> = async (_x, next) => {
    try { await next() } catch (err) { seen.push((err as Error).message); throw err }
  }
  const boom: Stage<X> = () => { throw new Error('sync boom') }
  const x: X = { trace: [] }
  let run: Promise<void> | undefined
  t.doesNotThrow(() => { run = pipeline([boom])(x) }, 'the first stage\'s throw is a rejection')
  await t.rejects(run!, { message: 'sync boom' })
  await t.rejects(pipeline([guard, boom, named('never')])(x), { message: 'sync boom' })
  t.same(seen, ['sync boom'], 'and an outer stage sees it as a rejection of next()')
  t.same(x.trace, [])
})

t.test('a list of stages that never awaits does its work in the caller\'s turn', async (t) => {
  const sync = (name: string): Stage<X> => (x, next) => { x.trace.push(name); return next() }
  const x: X = { trace: [] }
  const done = pipeline([sync('a'), sync('b')])(x)
  t.same(x.trace, ['a', 'b'], 'before the returned promise is awaited')
  await done
})

t.test('fork: the branch replaces the rest of the list when its test holds', async (t) => {
  const run = pipeline([named('front'), fork<X>((x) => x.stopAt === 'tcp', [named('tcp-a'), named('tcp-b')]), named('http')])
  const branch: X = { trace: [], stopAt: 'tcp' }
  await run(branch)
  t.same(branch.trace, ['front', 'tcp-a', 'tcp-b', '/tcp-b', '/tcp-a', '/front'], 'the rest of the outer list never runs')
  const main: X = { trace: [] }
  await run(main)
  t.same(main.trace, ['front', 'http', '/http', '/front'], 'the branch never runs')
})
