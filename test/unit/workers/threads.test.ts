// WorkerThreads with stand-in worker modules (fixtures/fake-worker.ts): a thread that cannot
// bind does not stop the start, is logged with the fix and retried; questions are answered
// per thread and a thread that does not answer is left out; a snapshot reaches every thread;
// an ejection by one thread reaches the main thread and the others, not itself.
import { Registry } from 'prom-client'
import t, { type Test } from 'tap'
import type { NodeConfig } from '../../../daemon/config/schema.ts'
import { WorkerThreads, type WorkerThreadsOptions } from '../../../daemon/workers/threads.ts'
import type { Snapshot } from '../../../policy/snapshot.ts'

const entry = new URL('./fixtures/fake-worker.ts', import.meta.url)

function threads(t: Test, mode: string, over: Partial<WorkerThreadsOptions> = {}) {
  const ejections: Array<[string, number]> = []
  const errors: Array<{ obj: Record<string, unknown>; msg: string }> = []
  const forwarded: string[] = []
  const log = {
    error: (obj: Record<string, unknown>, msg: string) => errors.push({ obj, msg }),
    warn: () => undefined, info: () => undefined, debug: () => undefined,
  } as unknown as WorkerThreadsOptions['log']
  let snapshot: Snapshot | undefined = { generation: 1 } as Snapshot
  const w = new WorkerThreads({
    threads: 2, config: { logLevel: 'info', fakeMode: mode } as unknown as NodeConfig, hostState: new SharedArrayBuffer(8), log,
    forward: (lines) => forwarded.push(lines), registry: new Registry(), snapshot: () => snapshot, certs: () => ({ leaves: [], bundlePem: '' }),
    bound: () => undefined, ejected: (e, until) => ejections.push([e, until]), entry, ...over,
  })
  t.teardown(() => w.destroy())
  return { w, errors, forwarded, ejections, setSnapshot: (s: Snapshot) => { snapshot = s } }
}

t.test('a thread that cannot bind does not stop the start: logged with the fix, retried with backoff', async (t) => {
  const { w, errors, forwarded } = threads(t, 'fail')
  await w.start()
  t.same(w.running, [], 'no thread is running')
  t.ok(forwarded.some((l) => l.includes('fake worker failing')), 'its log lines reached the primary')
  t.equal(errors.length, 2, 'one error per thread')
  t.match(errors[0]!.msg, /not in a reuseport group \(hostmesh\.socket needs ReusePort=yes/)
  t.equal(errors[0]!.obj.retryInMs, 100, 'retried after the first backoff')
  for (let i = 0; i < 100 && errors.length < 4; i++) await new Promise((r) => setTimeout(r, 50))
  t.ok(errors.length >= 4, `retried: ${errors.length} errors`)
  const delays = errors.filter((e) => e.obj.worker === 1).map((e) => e.obj.retryInMs as number)
  t.same(delays.slice(0, 2), [100, 200], 'the backoff doubles')
  await w.close()
  const after = errors.length
  await new Promise((r) => setTimeout(r, 500))
  t.equal(errors.length, after, 'no retry after close')
})

t.test('questions: one answer per thread; a thread that does not answer is left out; snapshots reach every thread', async (t) => {
  const { w, setSnapshot, ejections } = threads(t, 'echo')
  await w.start()
  t.same(w.running, [1, 2])
  const s2 = { generation: 2 } as Snapshot
  setSnapshot(s2)
  w.follow(s2)
  // Worker 1 reports its ejection after it started: once the primary has heard it, it has
  // passed it on, ahead of the question below.
  for (let i = 0; i < 100 && ejections.length === 0; i++) await new Promise((r) => setTimeout(r, 20))
  const answers = await w.ask('clusters') as unknown as Array<{ worker: number; generation: number; ejected: string[] }>
  t.same(answers.map((a) => a.worker).sort(), [1, 2])
  t.ok(answers.every((a) => a.generation === 2), 'both threads follow the posted snapshot')
  t.same(ejections, [['10.0.0.9:80', 12345]], 'worker 1\'s ejection reached the main thread')
  t.same(answers.find((a) => a.worker === 2)?.ejected, ['10.0.0.9:80'], 'and worker 2')
  t.same(answers.find((a) => a.worker === 1)?.ejected, [], 'not worker 1 itself')

  const mute = threads(t, 'mute', { threads: 1 })
  await mute.w.start()
  const started = Date.now()
  t.same(await mute.w.ask('metrics'), [], 'no answer: left out')
  t.ok(Date.now() - started >= 1900, 'after the answer timeout')
  await w.close()
  t.same(w.running, [], 'closed')
})
