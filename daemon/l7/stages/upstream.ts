// The last stage on both hosts: the request goes to the chosen connection (a pooled HBONE
// stream to the endpoint on the source host, a pooled TCP connection to the local workload on
// the destination), in the protocol the client spoke, and the response comes back.
//   failure before a response head: 503 UF (Envoy's "upstream connect error or disconnect/
//   reset before headers"); the destination's CONNECT refusal (401): 403 UAEX.
import { causeChain } from '../../../base/errors.ts'
import type { Exchange } from '../exchange.ts'
import { reply } from '../exchange.ts'
import { relay, sendH1, sendH1Asterisk, sendH2, upgradeH1, type UpstreamResponse } from '../forward.ts'
import { oneShotAgent, type Connect, type UpstreamPool } from '../pool.ts'
import type { Stage } from '../../../base/stage.ts'

export interface UpstreamChoice {
  /** Pool key: one pool per (source workload, endpoint), or per local workload address. */
  readonly key: string
  /** `ip:port` of the upstream, for :authority of the h2c session and the access log. */
  readonly address: string
  readonly connect: Connect
  /** What the request's outcome tells the balancer (source side). */
  readonly observe?: (outcome: { latencyMs: number; ok: boolean }) => void
}

export function upstream<C>(pool: UpstreamPool, choose: (x: Exchange<C>) => UpstreamChoice): Stage<Exchange<C>> {
  return async (x) => {
    // The client left, or the timeout answered, while earlier stages ran: send nothing.
    if (x.aborted || x.timedOut) return
    const u = choose(x)
    x.record.update({ upstream: u.address })
    const t0 = performance.now()
    let up: UpstreamResponse
    try {
      const d = x.down
      if (d.version === 'upgrade') return await upgradeH1(x, oneShotAgent(u.connect))
      if (d.version === '1.1') {
        up = await (x.path === '*' ? sendH1Asterisk(x, oneShotAgent(u.connect)) : sendH1(x, pool.dispatcher(u.key, u.address, u.connect)))
      } else {
        const session = await pool.session(u.key, u.address, u.connect)
        // The route's timeout may have answered while the session was being opened.
        if (x.timedOut || x.aborted) return
        up = await sendH2(x, session)
      }
    } catch (err) {
      u.observe?.({ latencyMs: performance.now() - t0, ok: false })
      // timeouts.ts answered (504) and cancelled this try: nothing more to say.
      if (x.timedOut) return
      if (x.aborted) {
        if (!x.flags.includes('DC')) x.flags.push('DC')
        return
      }
      x.error = (err as Error).message
      const status = causeChain(err).map((e) => (e as { status?: unknown }).status).find((s) => typeof s === 'number')
      if (status === 401) return reply(x, { status: 403, flag: 'UAEX', message: 'RBAC: access denied' })
      return reply(x, { status: 503, flag: 'UF', message: 'upstream connect error or disconnect/reset before headers' })
    }
    u.observe?.({ latencyMs: performance.now() - t0, ok: up.status < 500 })
    x.record.responseStarted()
    await relay(x, up)
  }
}
