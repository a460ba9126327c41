// HTTPRoute's RequestMirror filter (Gateway API; Envoy's request_mirror_policies, Istio's
// mirror): for `percent` of requests, decided per request, a copy goes to the mirror Service
// port, and its answer is read and thrown away. The copy has the original's method, path and
// query and headers as the filters left them, with `-shadow` after the host of its
// Host/:authority (Envoy's), in the protocol the client spoke, to an endpoint the mirror
// service's load balancer picks, over the same pooled connections as any request to it.
// The original never waits for its copy (fire and forget), and a copy never fails it:
//   - a copy has its own timeout, the route's `timeouts.request` (shortened by grpc-timeout,
//     as the original's) or else 15 s, Envoy's route default, which Envoy gives its shadows;
//     it runs from this stage, the wait for the body included;
//   - at most MIRROR_MAX_IN_FLIGHT copies in flight per process, and at most the mirror
//     service's connectionPool.maxRequests (Envoy applies the shadow cluster's circuit
//     breaker); over either the copy is dropped, never queued;
//   - a body goes along only when it fits the replay buffer (64 KiB, replay-body.ts): the
//     copy waits for the whole body, read as fast as the original's try takes it, and is
//     dropped when the body outgrows the buffer, the client cuts it short, or the original
//     was answered here (503 UH, 504 UT...) before any try read it.
// Upgrades and `OPTIONS *` are not mirrored. Results: hostmesh_mirror_requests_total; copies
// are not in the access log; copies that fail or are dropped get a debug line at most once per
// LogThrottle window (10 s) for each result.
import type { Logger } from '../../../base/logger.ts'
import type { Stage } from '../../../base/stage.ts'
import { LogThrottle } from '../../../base/throttle.ts'
import type { Endpoint, WorkloadInfo } from '../../../policy/snapshot.ts'
import type { Balancer } from '../../balance/balancer.ts'
import { targetOf, type Target } from '../../balance/target.ts'
import type { Exchange } from '../exchange.ts'
import { hasRequestBody } from '../forward.ts'
import type { MirrorMetrics, MirrorResult } from '../mirror-metrics.ts'
import { mirrorH1, mirrorH2, shadowAuthority, type MirrorRequest } from '../mirror-send.ts'
import type { MirrorSlots } from '../mirror-slots.ts'
import type { OutboundConn } from '../outbound-conn.ts'
import type { UpstreamPool } from '../pool.ts'
import { REPLAY_LIMIT, ReplayBody } from '../replay-body.ts'
import { deadlineOf } from './timeouts.ts'
import type { UpstreamChoice } from './upstream.ts'

/** Envoy's route timeout default, which its shadow requests get when the route sets none. */
export const MIRROR_DEFAULT_TIMEOUT_MS = 15_000

export interface MirrorDeps {
  readonly pool: UpstreamPool
  readonly balancer: Balancer
  readonly slots: MirrorSlots
  readonly metrics: MirrorMetrics
  readonly log: Logger
  /** The connection a request from `source` to `ep` of `t` takes: the upstream stage's pool key and connect. */
  readonly via: (source: WorkloadInfo, ep: Endpoint, t: Target) => UpstreamChoice
}

type Outcome = { readonly result: MirrorResult; readonly why?: string }
type Note = (service: string, o: Outcome) => void

export function mirror(deps: MirrorDeps): Stage<Exchange<OutboundConn>> {
  // One debug line per window about copies that failed or were dropped (LogThrottle counts the rest).
  const throttle = new LogThrottle(deps.log, { perWindow: 1 })
  const note: Note = (service, o) => throttle.debug(`mirror-${o.result}`, { mirror: service, result: o.result, why: o.why }, 'a request mirror copy failed or was dropped')
  return (x, next) => {
    const m = x.rule?.mirror
    if (m && x.down.version !== 'upgrade' && x.path !== '*' && Math.random() * 100 < m.percent) start(deps, x, m.servicePort, note)
    return next()
  }
}

/** Decides the copy's slot and body now (before later stages read the body); sends it on its own. */
function start(deps: MirrorDeps, x: Exchange<OutboundConn>, servicePort: string, note: Note): void {
  const port = x.snapshot.servicePorts.get(servicePort)
  if (!port) return
  const t = targetOf(x.snapshot, port)
  const done = (o: Outcome): void => {
    deps.metrics.mirrored(t.service, o.result)
    if (o.result !== 'sent') note(t.service, o)
  }
  const release = deps.slots.acquire(t.service, t.settings.connectionPool.maxRequests)
  if (!release) return done({ result: 'dropped', why: 'over the concurrency cap' })
  let body: Promise<Buffer | undefined> | undefined
  const d = x.down
  if (hasRequestBody(x) && d.version !== 'upgrade') {
    if (Number(x.headers['content-length']) > REPLAY_LIMIT) {
      release()
      return done({ result: 'dropped', why: 'the body is over the replay buffer' })
    }
    // The retry stage, later, keeps this one.
    x.body ??= new ReplayBody(d.version === '1.1' ? d.req : d.stream, (n) => { x.requestBytes += n })
    body = x.body.whenComplete()
  }
  const copy: MirrorRequest = {
    method: x.method, target: x.query ? `${x.path}?${x.query}` : x.path,
    authority: shadowAuthority(x.authority), headers: { ...x.headers },
  }
  const deadline = deadlineOf(x)
  const ms = deadline === undefined ? MIRROR_DEFAULT_TIMEOUT_MS : deadline - x.startedAt
  const ac = new AbortController()
  // A copy's timer alone never keeps the process up.
  const timer = setTimeout(() => ac.abort(new Error(`the mirror's timeout (${ms} ms) expired`)), ms).unref()
  void send(deps, x, t, copy, body, ac.signal).then(done, (err: unknown) => done({ result: 'failed', why: (err as Error).message })).finally(() => {
    clearTimeout(timer)
    release()
  })
}

async function send(deps: MirrorDeps, x: Exchange<OutboundConn>, t: Target, copy: MirrorRequest, body: Promise<Buffer | undefined> | undefined, signal: AbortSignal): Promise<Outcome> {
  let held: Buffer | undefined
  if (body) {
    try {
      held = await abortable(body, signal)
    } catch {
      return { result: 'dropped', why: 'the body was not complete within the mirror\'s timeout' }
    }
    if (!held) return { result: 'dropped', why: 'the body outgrew the replay buffer or was cut short' }
    const trailers = x.body?.trailers
    copy = { ...copy, body: held, ...(trailers ? { trailers } : {}) }
  }
  const ep = deps.balancer.pick(t.key, t.endpoints, t.settings, undefined, 'request')
  if (!ep) return { result: 'failed', why: 'no healthy upstream' }
  const u = deps.via(x.conn.source, ep, t)
  const t0 = performance.now()
  try {
    const status = x.down.version === '2'
      ? await mirrorH2(await abortable(deps.pool.session(u.key, u.address, u.connect), signal), copy, signal)
      : await mirrorH1(deps.pool.dispatcher(u.key, u.address, u.connect), copy, signal)
    u.observe?.({ latencyMs: performance.now() - t0, status })
    // A 5xx is the mirror failing the copy (or, in the mesh, its host's proxy failing to reach it).
    return status >= 500 ? { result: 'failed', why: `the mirror answered ${status}` } : { result: 'sent' }
  } catch (err) {
    u.observe?.({ latencyMs: performance.now() - t0, status: 0 })
    return { result: 'failed', why: signal.aborted ? String((signal.reason as Error).message) : (err as Error).message }
  }
}

/** `p`, or a rejection once `signal` aborts (what `p` stands for goes on, unwaited). */
function abortable<T>(p: Promise<T>, signal: AbortSignal): Promise<T> {
  if (signal.aborted) return Promise.reject(signal.reason as Error)
  return new Promise<T>((resolve, reject) => {
    const onAbort = (): void => reject(signal.reason as Error)
    signal.addEventListener('abort', onAbort, { once: true })
    p.then(resolve, reject).finally(() => signal.removeEventListener('abort', onAbort))
  })
}

