// A worker thread's log destination: lines go to the primary in one message per event-loop
// turn, and a thread that logs faster than that holds at most 1 MiB; beyond, whole lines are
// dropped and counted.
import t from 'tap'
import { PortDestination } from '../../../daemon/workers/log-port.ts'

t.test('one post per turn with every line in order', async (t) => {
  const posted: string[] = []
  const d = new PortDestination({ postMessage: (m) => posted.push(m.lines) })
  d.write('{"a":1}\n')
  d.write('{"a":2}\n')
  t.same(posted, [], 'nothing posted within the turn')
  await new Promise((r) => setImmediate(r))
  t.same(posted, ['{"a":1}\n{"a":2}\n'])
  d.flush()
  t.equal(posted.length, 1, 'a flush with nothing pending posts nothing')
})

t.test('at most 1 MiB waits; beyond it lines are dropped whole and counted', async (t) => {
  const posted: string[] = []
  const d = new PortDestination({ postMessage: (m) => posted.push(m.lines) })
  const line = `${'x'.repeat(1023)}\n`
  for (let i = 0; i < 1100; i++) d.write(line)
  t.equal(d.dropped, 1100 - 1024, 'the lines past 1 MiB')
  d.flush()
  t.equal(posted[0]!.length, 1024 * 1024, 'exactly the bound was posted')
  d.write(line)
  d.flush()
  t.equal(posted[1], line, 'and the next turn starts empty')
})
