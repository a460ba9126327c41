// The Fault filter (Istio's HTTPFaultInjection): a fixed delay and an abort, each applied to
// its percentage of requests, decided per request. A delayed request is flagged DI and its
// delay counts against the route's request timeout (it never waits past it); an aborted one
// gets the configured status, flagged FI (gRPC: the status's gRPC equivalent), and never
// reaches an upstream.
import type { Exchange } from '../exchange.ts'
import { reply } from '../exchange.ts'
import { deadlineOf, expire } from './timeouts.ts'

export async function fault<C>(x: Exchange<C>, next: () => Promise<void>): Promise<void> {
  const f = x.rule?.fault
  if (f?.delay && Math.random() * 100 < f.delay.percent) {
    x.flags.push('DI')
    const deadline = deadlineOf(x)
    const wait = deadline === undefined ? f.delay.fixedDelayMs : Math.min(f.delay.fixedDelayMs, Math.max(0, deadline - performance.now()))
    await new Promise((resolve) => setTimeout(resolve, wait))
    if (x.aborted) return
    // Cut short by the deadline: the request has timed out (timers may fire a hair early).
    if (wait < f.delay.fixedDelayMs) return expire(x)
  }
  if (f?.abort && Math.random() * 100 < f.abort.percent) return reply(x, { status: f.abort.httpStatus, flag: 'FI', message: 'fault filter abort' })
  await next()
}
