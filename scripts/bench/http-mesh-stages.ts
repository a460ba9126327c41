// Issue #13's benchmark, part of the http-mesh bench: what the L7 resilience stages cost a
// request when none of them triggers. Two Services side by side on the same nginx, called by
// the same client workload through the same two daemons, the same HBONE session and the same wrk:
//   bare   — the bench's `server` Service (10.96.1.2:80 → :8080), an HTTPRoute rule with
//            backendRefs only;
//   stages — `server-stages` (10.96.1.3:80 → :8082), the same rule plus timeouts (request 10 s,
//            backendRequest 5 s) and retry (attempts 2), and a DestinationPolicy with every
//            connectionPool limit at 100,000 and a rateLimit bucket of 1,000,000 tokens a second.
// Side by side rather than one route rewritten between runs: the two are measured by the same
// daemon processes, with nothing between a bare run and a stages run but the VIP wrk calls, so
// they can alternate round by round; a rewrite would put a reload (parse, compile, GC, JIT
// deopts of the old snapshot's shapes) and a wait for the new generation between every pair.
// `stages` gets its own workload port because the rate limit is per workload port (and the
// breaker and retry budget per Service), so nothing of it reaches the bare runs.
// A GET has no body to hold; the POST variant (1 KiB, wrk-post-1k.lua) makes the retry stage
// hold its body in the replay buffer (a POST is not retried on a status, but is on a connect
// failure, so the body is kept). nginx answers POST to the file via `error_page 405 =200`.
import { parseMetrics, type Sample } from '../demo/telemetry.ts'
import type { TestHost } from '../netns/hosts.ts'
import type { SelfTime } from './cpuprofile-summary.ts'
import type { Daemon, Measured, Profiled, Wrk } from './http-mesh.ts'
import { median } from './stats.ts'

export const STAGES_VIP = '10.96.1.3'
/** The server workload's port for the stages Service: its own rate-limit bucket. */
export const STAGES_PORT = 8082
const POOL_LIMIT = 100_000
const BUCKET = 1_000_000
const REQUEST_TIMEOUT_S = 10
const BACKEND_TIMEOUT_S = 5
/** The stages' settings as the bench prints and records them. */
const SETTINGS = {
  route: { timeouts: { request: `${REQUEST_TIMEOUT_S}s`, backendRequest: `${BACKEND_TIMEOUT_S}s` }, retry: { attempts: 2 } },
  destinationPolicy: {
    connectionPool: { maxRequests: POOL_LIMIT, maxPendingRequests: POOL_LIMIT, maxConnections: POOL_LIMIT },
    rateLimit: { maxTokens: BUCKET, tokensPerFill: BUCKET, fillInterval: '1s' },
  },
}
/** The goal of #13: the stages cost at most 10% of req/s. */
const GOAL = 0.9

const VARIANTS = ['bare', 'stages'] as const
export type Variant = (typeof VARIANTS)[number]
export type Method = 'GET' | 'POST'

/** The documents this comparison adds to the bench's policy; `bare` is the bench's own `server` route. */
export function stagesPolicy(v: string, ns: string): string[] {
  const r = SETTINGS.route
  const d = SETTINGS.destinationPolicy
  return [
    `${v}kind: Service\nmetadata: {name: server-stages, namespace: ${ns}}\nspec: {addresses: [${STAGES_VIP}], ports: [{name: http, port: 80, protocol: http, targetPort: ${STAGES_PORT}}], selector: {app: server}}\n`,
    `${v}kind: HTTPRoute\nmetadata: {name: server-stages, namespace: ${ns}}\nspec:\n  parentRefs: [{name: server-stages, port: 80}]\n  rules:\n    - backendRefs: [{name: server-stages, port: 80}]\n      timeouts: {request: ${r.timeouts.request}, backendRequest: ${r.timeouts.backendRequest}}\n      retry: {attempts: ${r.retry.attempts}}\n`,
    `${v}kind: DestinationPolicy\nmetadata: {name: server-stages, namespace: ${ns}}\nspec:\n  targetRefs: [{kind: Service, name: server-stages}]\n  connectionPool: {maxRequests: ${d.connectionPool.maxRequests}, maxPendingRequests: ${d.connectionPool.maxPendingRequests}, maxConnections: ${d.connectionPool.maxConnections}}\n  rateLimit: {maxTokens: ${d.rateLimit.maxTokens}, tokensPerFill: ${d.rateLimit.tokensPerFill}, fillInterval: ${d.rateLimit.fillInterval}}\n`,
  ]
}

export interface StagesOptions { readonly seconds: number; readonly rounds: number; readonly post: boolean }

export interface StagesDeps {
  readonly hosts: Readonly<Record<Daemon, TestHost>>
  readonly bareVip: string
  /** wrk as the client workload, with the given Lua script (GET: wrk-report.lua). */
  readonly wrk: (url: string, seconds: number, method: Method) => Promise<Wrk>
  readonly measure: <T>(f: () => Promise<T>) => Promise<Measured<T>>
}

export interface StageRun extends Measured<Wrk> { readonly round: number; readonly variant: Variant; readonly method: Method }

export interface StagesOutcome {
  readonly options: StagesOptions
  readonly runs: StageRun[]
  /** What the stages did during the measured runs (deltas of the daemons' counters): all 0 when none triggered. */
  readonly triggered: Record<string, number>
}

const url = (vip: string): string => `http://${vip}/1k`

function some(x: unknown, pred: (o: Record<string, unknown>) => boolean): boolean {
  if (Array.isArray(x)) return x.some((y) => some(y, pred))
  if (x === null || typeof x !== 'object') return false
  const o = x as Record<string, unknown>
  return pred(o) || Object.values(o).some((y) => some(y, pred))
}

/**
 * Throws unless both daemons run the policy with the stages: no failed reload, the route's
 * retry and timeouts on the source, the rate-limit bucket on the destination.
 */
export async function checkStagesInForce(hosts: Readonly<Record<Daemon, TestHost>>): Promise<void> {
  const dump = async (h: TestHost): Promise<{ policy: { generation: number; lastError: unknown; snapshot: unknown } }> =>
    JSON.parse(await h.mustExec(['curl', '-sS', '-m', '5', 'http://127.0.0.1:15000/config_dump'], { timeoutMs: 10_000 })) as { policy: { generation: number; lastError: unknown; snapshot: unknown } }
  const [src, dst] = [await dump(hosts.source), await dump(hosts.destination)]
  const problems: string[] = []
  for (const [who, d] of [['source', src], ['destination', dst]] as const) if (d.policy.lastError !== null) problems.push(`${who}: a failed reload: ${JSON.stringify(d.policy.lastError)}`)
  const retry = (o: Record<string, unknown>): boolean => {
    const r = o.retry as Record<string, unknown> | undefined
    const t = o.timeouts as Record<string, unknown> | undefined
    return r?.attempts === SETTINGS.route.retry.attempts && t?.requestMs === REQUEST_TIMEOUT_S * 1000 && t.backendRequestMs === BACKEND_TIMEOUT_S * 1000
  }
  const pool = (o: Record<string, unknown>): boolean => o.maxRequests === POOL_LIMIT && o.maxPendingRequests === POOL_LIMIT && o.maxConnections === POOL_LIMIT
  const bucket = (o: Record<string, unknown>): boolean => o.maxTokens === BUCKET && o.tokensPerFill === BUCKET && o.fillIntervalMs === 1000
  if (!some(src.policy.snapshot, retry)) problems.push('source: no route rule with retry {attempts: 2} and timeouts {request: 10s, backendRequest: 5s} in /config_dump')
  if (!some(src.policy.snapshot, pool)) problems.push(`source: no connectionPool with every limit at ${POOL_LIMIT} in /config_dump`)
  if (!some(dst.policy.snapshot, bucket)) problems.push(`destination: no rate-limit bucket of ${BUCKET}/s in /config_dump`)
  if (problems.length > 0) throw new Error(`the stages policy is not in force:\n${problems.join('\n')}`)
}

/** The counters a triggered stage moves, and every answer that was not a 200, by daemon. */
async function counters(hosts: Readonly<Record<Daemon, TestHost>>): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  const add = (k: string, n: number): void => { out[k] = (out[k] ?? 0) + n }
  for (const who of ['source', 'destination'] as const) {
    const samples: Sample[] = parseMetrics(await hosts[who].mustExec(['curl', '-sS', '-m', '5', 'http://127.0.0.1:15000/metrics'], { timeoutMs: 10_000 }))
    for (const s of samples) {
      if (s.name === 'hostmesh_retries_total') add(`${who} retries ${s.labels.result}`, s.value)
      else if (s.name === 'hostmesh_circuit_breaker_overflow_total') add(`${who} breaker overflow ${s.labels.resource ?? ''}`.trim(), s.value)
      else if (s.name === 'hostmesh_rate_limited_total') add(`${who} rate limited ${s.labels.scope}`, s.value)
      else if (s.name === 'istio_requests_total' && s.labels.reporter === who && s.labels.response_code !== '200') add(`${who} ${s.labels.destination_service} ${s.labels.response_code} ${s.labels.response_flags}`, s.value)
    }
  }
  return out
}

export async function measureStages(deps: StagesDeps, opts: StagesOptions): Promise<StagesOutcome> {
  const vip = (v: Variant): string => (v === 'bare' ? deps.bareVip : STAGES_VIP)
  const methods: Method[] = opts.post ? ['GET', 'POST'] : ['GET']
  // Warm-up: the pools to :8082 on both hosts, and the JIT on the stages' code.
  for (const method of methods) for (const v of VARIANTS) await deps.wrk(url(vip(v)), 2, method)
  const before = await counters(deps.hosts)
  const runs: StageRun[] = []
  for (let round = 0; round < opts.rounds; round++) {
    const order: Variant[] = round % 2 === 0 ? ['bare', 'stages'] : ['stages', 'bare']
    for (const method of methods) {
      for (const variant of order) runs.push({ round, variant, method, ...(await deps.measure(() => deps.wrk(url(vip(variant)), opts.seconds, method))) })
    }
  }
  const after = await counters(deps.hosts)
  const triggered: Record<string, number> = {}
  for (const [k, n] of Object.entries(after)) if (n - (before[k] ?? 0) !== 0) triggered[k] = n - (before[k] ?? 0)
  return { options: opts, runs, triggered }
}

const rate = (w: Wrk): number => w.requests / w.seconds
const cpuPerK = (r: StageRun, who: Daemon): number => (r.daemonCpuSeconds[who] / r.result.requests) * 1000

interface VariantSummary { method: Method; variant: Variant; reqPerSec: number; min: number; max: number; rates: number[]; p50ms: number; p99ms: number; errors: number; cpuPerThousand: Record<Daemon, number> }
interface RatioSummary { method: Method; reqPerSec: number; perRound: number[]; perRoundMedian: number; p50: number; p99: number; cpuPerRequest: Record<Daemon, number>; goal: number; met: boolean }
export interface StagesSummary { settings: typeof SETTINGS; variants: VariantSummary[]; ratios: RatioSummary[]; triggered: Record<string, number> }

/** Prints the comparison (markdown tables, as BENCHMARKS.md shows them) and returns its summary for the raw JSON. */
export function reportStages(o: StagesOutcome, connections: number): StagesSummary {
  const methods = [...new Set(o.runs.map((r) => r.method))]
  const variants: VariantSummary[] = []
  const ratios: RatioSummary[] = []
  const f2 = (x: number): string => x.toFixed(2)
  const f3 = (x: number): string => x.toFixed(3)
  console.log(`\nstage cost (#13): an HTTPRoute rule with backendRefs only (bare) vs the same rule with timeouts ${JSON.stringify(SETTINGS.route.timeouts)}, retry ${JSON.stringify(SETTINGS.route.retry)}, connectionPool limits of ${POOL_LIMIT} and a rateLimit of ${BUCKET}/s (stages), none of which triggers;`)
  console.log(`wrk -t2 -c${connections} -d${o.options.seconds}s, 1 KiB responses${o.options.post ? ', GET and POST with a 1 KiB body' : ''}, ${o.options.rounds} rounds, bare and stages back to back, the order alternating each round:\n`)
  console.log('| method | route | req/s (median) | min | max | p50 ms | p99 ms | CPU s per 1,000 requests: source | destination | errors |')
  console.log('|---|---|---|---|---|---|---|---|---|---|')
  for (const method of methods) {
    const byVariant = new Map<Variant, VariantSummary>()
    for (const variant of VARIANTS) {
      const rs = o.runs.filter((r) => r.method === method && r.variant === variant)
      const rates = rs.map((r) => rate(r.result))
      const s: VariantSummary = {
        method, variant, reqPerSec: median(rates), min: Math.min(...rates), max: Math.max(...rates), rates: rates.map(Math.round),
        p50ms: median(rs.map((r) => r.result.p50ms)), p99ms: median(rs.map((r) => r.result.p99ms)),
        errors: rs.reduce((n, r) => n + r.result.errors + r.result.non2xx, 0),
        cpuPerThousand: { source: median(rs.map((r) => cpuPerK(r, 'source'))), destination: median(rs.map((r) => cpuPerK(r, 'destination'))) },
      }
      byVariant.set(variant, s)
      variants.push(s)
      console.log(`| ${method} | ${variant} | ${s.reqPerSec.toFixed(0)} | ${s.min.toFixed(0)} | ${s.max.toFixed(0)} | ${f2(s.p50ms)} | ${f2(s.p99ms)} | ${f3(s.cpuPerThousand.source)} | ${f3(s.cpuPerThousand.destination)} | ${s.errors} |`)
    }
    const [b, s] = [byVariant.get('bare')!, byVariant.get('stages')!]
    // Each round's stages run over the bare run next to it: drift between rounds cancels out.
    const perRound: number[] = []
    for (let round = 0; round < o.options.rounds; round++) {
      const pair = (v: Variant): StageRun | undefined => o.runs.find((r) => r.round === round && r.method === method && r.variant === v)
      const [rb, rs] = [pair('bare'), pair('stages')]
      if (rb && rs) perRound.push(rate(rs.result) / rate(rb.result))
    }
    const reqPerSec = s.reqPerSec / b.reqPerSec
    ratios.push({
      method, reqPerSec, perRound, perRoundMedian: median(perRound), p50: s.p50ms / b.p50ms, p99: s.p99ms / b.p99ms,
      cpuPerRequest: { source: s.cpuPerThousand.source / b.cpuPerThousand.source, destination: s.cpuPerThousand.destination / b.cpuPerThousand.destination },
      goal: GOAL, met: reqPerSec >= GOAL,
    })
  }
  console.log('')
  for (const r of ratios) {
    console.log(`${r.method} stages/bare: req/s ${f3(r.reqPerSec)} (goal ≥ ${GOAL}: ${r.met ? 'met' : 'NOT met'}); per round ${r.perRound.map(f3).join(', ')} (median ${f3(r.perRoundMedian)}); p50 ${f2(r.p50)}x, p99 ${f2(r.p99)}x; daemon CPU per request: source ${f3(r.cpuPerRequest.source)}x, destination ${f3(r.cpuPerRequest.destination)}x`)
  }
  // `0 DC`: a request in flight when a wrk run stopped (its client closed), not a stage's doing.
  const t = Object.entries(o.triggered)
  const cut = t.filter(([k]) => k.endsWith(' 0 DC'))
  const rest = t.filter(([k]) => !k.endsWith(' 0 DC'))
  console.log(`\nwhat the stages and the daemons counted during these runs (retries, overflow, rate limited, answers not 200): ${rest.length === 0 ? 'nothing' : rest.map(([k, n]) => `${k}: ${n}`).join('; ')}`)
  if (cut.length > 0) console.log(`requests cut off when a wrk run stopped (0 DC): ${cut.map(([k, n]) => `${k}: ${n}`).join('; ')}`)
  return { settings: SETTINGS, variants, ratios, triggered: o.triggered }
}

export interface StageProfiles { readonly method: Method; readonly seconds: number; readonly runs: Readonly<Record<Variant, Profiled>> }

/** Bare, then stages, each on daemons started afresh under --cpu-prof (`profile` restarts them). */
export async function profileStages(deps: { bareVip: string; profile: (url: string, seconds: number) => Promise<Profiled> }, method: Method, seconds: number): Promise<StageProfiles> {
  const bare = await deps.profile(url(deps.bareVip), seconds)
  const stages = await deps.profile(url(STAGES_VIP), seconds)
  return { method, seconds, runs: { bare, stages } }
}

interface Diff { name: string; bareShare: number; stagesShare: number; bareUs: number; stagesUs: number; diffUs: number }

/**
 * Prints where the stages' extra CPU goes: per daemon, by owner, by hostmesh file and by
 * function, bare against stages, largest increase first, each as a share of the profile's busy
 * samples during the load and as µs of CPU per request: that share of the daemon's CPU time
 * (/proc) over the load's requests. V8 samples on a wall-clock timer, so a daemon preempted on
 * a busy machine piles samples on whatever it was doing (the socket writes most of all); the
 * CPU time from /proc is not inflated that way, so the µs add up to what the daemon spent.
 * Returns the tables for the raw JSON.
 */
export function reportStageProfiles(p: StageProfiles): Record<string, unknown> {
  const requests = (v: Variant): number => p.runs[v].load.requests + p.runs[v].warmRequests
  const cpuUs = (v: Variant, who: Daemon): number => (p.runs[v].loadCpuSeconds[who] * 1e6) / requests(v)
  const hostmesh = (name: string): boolean => /^(daemon|base|policy|certs)\//.test(name)
  const out: Record<string, unknown> = {
    method: p.method, seconds: p.seconds,
    loads: Object.fromEntries(VARIANTS.map((v) => [v, { reqPerSec: Math.round(rate(p.runs[v].load)), requests: requests(v), cpuSeconds: p.runs[v].loadCpuSeconds }])),
  }
  const pct = (x: number): string => `${(x * 100).toFixed(1)}%`
  console.log(`\nstage cost, profiled: ${p.method}, each route on both daemons started afresh under --cpu-prof, 1 s warm-up, then ${p.seconds} s of wrk -c64; samples taken during those ${p.seconds} s; µs = share of busy samples × the daemon's CPU µs per request (/proc):`)
  console.log(`bare ${rate(p.runs.bare.load).toFixed(0)} req/s, stages ${rate(p.runs.stages.load).toFixed(0)} req/s`)
  for (const who of ['source', 'destination'] as const) {
    const prof = (v: Variant): Profiled['profiles'][Daemon] => p.runs[v].profiles[who]
    const diff = (pick: (v: Variant) => readonly SelfTime[], keep: (name: string) => boolean, n: number): Diff[] => {
      const names = new Set([...pick('bare'), ...pick('stages')].map((x) => x.name).filter(keep))
      const share = (v: Variant, name: string): number => pick(v).find((x) => x.name === name)?.share ?? 0
      return [...names].map((name) => {
        const [bs, ss] = [share('bare', name), share('stages', name)]
        const [bu, su] = [bs * cpuUs('bare', who), ss * cpuUs('stages', who)]
        return { name, bareShare: bs, stagesShare: ss, bareUs: round2(bu), stagesUs: round2(su), diffUs: round2(su - bu) }
      }).sort((a, b) => b.diffUs - a.diffUs).slice(0, n)
    }
    const owners = diff((v) => prof(v).owners, () => true, 10)
    const files = diff((v) => prof(v).files, hostmesh, 12)
    const functions = diff((v) => prof(v).functions, () => true, 15)
    const cpu = { bare: round2(cpuUs('bare', who)), stages: round2(cpuUs('stages', who)) }
    out[who] = { cpuUsPerRequest: cpu, busyMs: { bare: prof('bare').busyMs, stages: prof('stages').busyMs }, profiles: { bare: prof('bare').file, stages: prof('stages').file }, owners, hostmeshFiles: files, functions }
    console.log(`\n${who} daemon: CPU ${cpu.bare.toFixed(1)} µs per request bare, ${cpu.stages.toFixed(1)} stages (${(cpu.stages / cpu.bare).toFixed(3)}x); profiles ${prof('bare').file}, ${prof('stages').file}`)
    for (const [title, rows] of [['owner', owners], ['hostmesh file', files], ['function', functions]] as const) {
      console.log(`\n| ${title} (self) | bare | stages | bare µs/req | stages µs/req | stages − bare µs |\n|---|---|---|---|---|---|`)
      for (const r of rows) console.log(`| ${r.name} | ${pct(r.bareShare)} | ${pct(r.stagesShare)} | ${r.bareUs.toFixed(2)} | ${r.stagesUs.toFixed(2)} | ${r.diffUs >= 0 ? '+' : ''}${r.diffUs.toFixed(2)} |`)
    }
  }
  return out
}

const round2 = (x: number): number => Math.round(x * 100) / 100
