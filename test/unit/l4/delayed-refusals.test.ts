// A connection over its workload's cap is reset after the delay, unread; with no delay, or
// with `max` already waiting, at once. The count of waiting connections goes back to zero.
import { connect, createServer, type AddressInfo, type Server, type Socket } from 'node:net'
import t, { type Test } from 'tap'
import { DelayedRefusals } from '../../../daemon/l4/delayed-refusals.ts'

async function server(t: Test, onConn: (s: Socket) => void): Promise<number> {
  const srv: Server = createServer(onConn)
  await new Promise<void>((r) => srv.listen(0, '127.0.0.1', r))
  t.teardown(() => { srv.close() })
  return (srv.address() as AddressInfo).port
}

/** Connects, writes a little, and resolves with how the connection ended and when. */
function attempt(port: number): Promise<{ error: string; ms: number }> {
  const t0 = performance.now()
  return new Promise((resolve) => {
    const c = connect(port, '127.0.0.1', () => c.write('hello'))
    let error = 'closed'
    c.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message })
    c.on('close', () => resolve({ error, ms: performance.now() - t0 }))
  })
}

t.test('reset after the delay, and at once past the bound or with no delay', async (t) => {
  const delayed = new DelayedRefusals(300, 2)
  const port = await server(t, (s) => delayed.refuse(s))
  const three = await Promise.all([attempt(port), attempt(port), attempt(port)])
  t.same(three.map((r) => r.error), ['ECONNRESET', 'ECONNRESET', 'ECONNRESET'], 'all reset')
  const ms = three.map((r) => r.ms).sort((a, b) => a - b)
  t.ok(ms[0]! < 250, `the one past the bound of 2 was reset at once (${ms[0]!.toFixed(0)} ms)`)
  t.ok(ms[1]! >= 280 && ms[2]! >= 280, `the two within it waited for the delay (${ms[1]!.toFixed(0)}, ${ms[2]!.toFixed(0)} ms)`)
  for (let i = 0; i < 100 && delayed.waiting > 0; i++) await new Promise((r) => setTimeout(r, 10))
  t.equal(delayed.waiting, 0, 'none is waiting afterwards')

  const now = new DelayedRefusals(0)
  const port2 = await server(t, (s) => now.refuse(s))
  const r = await attempt(port2)
  t.equal(r.error, 'ECONNRESET')
  t.ok(r.ms < 250, 'no delay: reset at once')
})

t.test('a client that gives up while it waits frees its place', async (t) => {
  const delayed = new DelayedRefusals(10_000, 1)
  const port = await server(t, (s) => delayed.refuse(s))
  const c = connect(port, '127.0.0.1')
  c.on('error', () => undefined)
  for (let i = 0; i < 100 && delayed.waiting === 0; i++) await new Promise((r) => setTimeout(r, 10))
  t.equal(delayed.waiting, 1)
  c.destroy()
  for (let i = 0; i < 100 && delayed.waiting > 0; i++) await new Promise((r) => setTimeout(r, 10))
  t.equal(delayed.waiting, 0, 'its place is free again')
})
