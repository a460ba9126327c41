// `npm run soak -- --long` (issue #15, not in CI): the steady loads for an hour (--seconds), while
// endpoints come and go: every ENDPOINT_EVERY_S the payments route mirrors its requests to a
// Service whose one endpoint is a new address:port (nothing listens there; a mirror is never
// waited for). Every daemon's RSS, open fds and per-endpoint state
// (hostmesh_balancer_endpoints) are sampled throughout. The verdict is on their slopes over the
// run after its first tenth (V8 and the pools settle): RSS and fds flat, and endpoint state
// bounded by what the policy holds, not growing with every endpoint that ever existed. The V8
// heap in use and the memory outside it (Buffers, TLS, HTTP/2 sessions) are sampled beside
// RSS and their slopes reported, to say where a drift of RSS lives; so is the young generation
// V8 keeps committed (new space), which it grows under load to --max-semi-space-size and shrinks
// when the load is light, moving RSS by up to 32 MiB a thread without anything leaking.
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { total } from '../demo/telemetry.ts'
import { HOSTS, type SoakMesh } from './mesh.ts'
import { applyPolicy, replaceFile, type Check, type Scenario } from './scenario.ts'

const ENDPOINT_EVERY_S = 20
/** RSS may drift by this much per hour, summed over the three daemons: a leak of 1 KiB per request at 200 req/s would be 700 MiB/h. */
const RSS_SLOPE_MAX_MIB_H = 20
/** Open fds: the loads keep ~10 connections busy; a leak of one per connection would be thousands per hour. */
const FDS_SLOPE_MAX_H = 10
/** Connections the loads hold at any moment: what a sample of open fds moves by with no leak. */
const FDS_NOISE = 10

export interface Sample {
  readonly s: number
  readonly rssMiB: number
  readonly fds: number
  readonly endpoints: number
  /** V8 heap in use, every thread's isolate, summed over the daemons. */
  readonly heapMiB: number
  /** Memory V8 accounts for outside its heap (ArrayBuffers, Buffers), summed likewise. */
  readonly externalMiB: number
  /** The young generation V8 has committed (new space), summed likewise. */
  readonly newSpaceMiB: number
}

/** Least-squares slope of y over x. */
export function slope(points: readonly (readonly [number, number])[]): number {
  const n = points.length
  if (n < 2) return 0
  const mx = points.reduce((a, [x]) => a + x, 0) / n
  const my = points.reduce((a, [, y]) => a + y, 0) / n
  const sxx = points.reduce((a, [x]) => a + (x - mx) ** 2, 0)
  return sxx === 0 ? 0 : points.reduce((a, [x, y]) => a + (x - mx) * (y - my), 0) / sxx
}

const MIRROR = (k: number): string => `apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: soak-mirror, namespace: shop}
spec:
  addresses: [10.96.0.90]
  ports: [{port: 80, protocol: http}]
  endpoints: [{address: 10.77.0.13, port: ${20_000 + (k % 20_000)}}]
`
const ROUTE_FILTER = `      filters:
        - type: RequestHeaderModifier`
const ROUTE_MIRROR = `      filters:
        - type: RequestMirror
          requestMirror: {backendRef: {name: soak-mirror, port: 80}, percent: 10}
        - type: RequestHeaderModifier`

async function sample(mesh: SoakMesh, s: number): Promise<Sample> {
  let rss = 0
  let fds = 0
  let endpoints = 0
  let heap = 0
  let external = 0
  let young = 0
  for (const name of HOSTS) {
    const m = await mesh.metrics(name)
    rss += total(m, 'process_resident_memory_bytes') / 2 ** 20
    fds += total(m, 'process_open_fds')
    endpoints += total(m, 'hostmesh_balancer_endpoints')
    heap += total(m, 'nodejs_heap_size_used_bytes') / 2 ** 20
    external += total(m, 'nodejs_external_memory_bytes') / 2 ** 20
    young += total(m, 'nodejs_heap_space_size_total_bytes', { space: 'new' }) / 2 ** 20
  }
  return { s, rssMiB: Math.round(rss), fds, endpoints, heapMiB: Math.round(heap * 10) / 10, externalMiB: Math.round(external * 10) / 10, newSpaceMiB: Math.round(young * 10) / 10 }
}

export const long: Scenario = {
  name: 'long',
  bar: 'RSS and open fds flat over the run (slope), per-endpoint state bounded while endpoints come and go',
  async prepare(mesh) {
    const routes = join(mesh.policyDir, '30-routes.yaml')
    const text = readFileSync(routes, 'utf8')
    if (!text.includes(ROUTE_FILTER)) throw new Error(`${routes}: the payments route's filters are not where --long expects them`)
    await applyPolicy(mesh, () => {
      writeFileSync(join(mesh.policyDir, '49-soak-mirror.yaml'), MIRROR(0))
      replaceFile(routes, text.replace(ROUTE_FILTER, ROUTE_MIRROR))
    })
  },
  async run(mesh, seconds) {
    const start = Date.now()
    // A sample at least every 20 s (the endpoint's pace), and ~60 over the run.
    const every = Math.max(5, Math.min(ENDPOINT_EVERY_S, Math.round(seconds / 60)))
    const samples: Sample[] = []
    let endpointsMoved = 0
    let nextEndpoint = start + ENDPOINT_EVERY_S * 1000
    for (let i = 0; Date.now() < start + seconds * 1000 && i < 100_000; i++) {
      const x = await sample(mesh, Math.round((Date.now() - start) / 1000))
      samples.push(x)
      // Progress, and the whole series for whoever reads the log: the row keeps 12 points.
      process.stderr.write(`long: ${JSON.stringify(x)}\n`)
      if (Date.now() >= nextEndpoint) {
        // Each move is in force on every host before the next sample: a refused edit fails the run.
        await applyPolicy(mesh, () => replaceFile(join(mesh.policyDir, '49-soak-mirror.yaml'), MIRROR(++endpointsMoved)))
        nextEndpoint += ENDPOINT_EVERY_S * 1000
      }
      await sleep(Math.max(0, Math.min(every * 1000, start + seconds * 1000 - Date.now())))
    }
    samples.push(await sample(mesh, Math.round((Date.now() - start) / 1000)))
    const copies = total(await mesh.metrics('node-a'), 'hostmesh_mirror_requests_total', { destination_service: 'soak-mirror.shop' })
    const settled = samples.filter((x) => x.s >= seconds / 10)
    /** Per hour, over the settled samples. */
    const slopeOf = (y: (x: Sample) => number): number => slope(settled.map((x) => [x.s / 3600, y(x)]))
    const rssSlope = slopeOf((x) => x.rssMiB)
    const fdsSlope = slopeOf((x) => x.fds)
    const heapSlope = slopeOf((x) => x.heapMiB)
    const externalSlope = slopeOf((x) => x.externalMiB)
    const withoutYoungSlope = slopeOf((x) => x.rssMiB - x.newSpaceMiB)
    const firstQuarter = Math.max(...samples.filter((x) => x.s <= seconds / 4).map((x) => x.endpoints))
    const last = samples.at(-1)!
    const checks: Check[] = [
      { name: 'RSS is flat', ok: rssSlope <= RSS_SLOPE_MAX_MIB_H, detail: `${rssSlope.toFixed(1)} MiB/h over the three daemons (bar ${RSS_SLOPE_MAX_MIB_H}); ${settled[0]?.rssMiB} → ${last.rssMiB} MiB; of which V8 heap in use ${heapSlope.toFixed(1)} MiB/h (${settled[0]?.heapMiB} → ${last.heapMiB}), external ${externalSlope.toFixed(1)} MiB/h (${settled[0]?.externalMiB} → ${last.externalMiB}); RSS less the young generation ${withoutYoungSlope.toFixed(1)} MiB/h (young generation ${settled[0]?.newSpaceMiB} → ${last.newSpaceMiB} MiB)` },
      // The loads hold ~10 connections at any moment: a short run's slope is mostly that noise, so a drift within it passes too.
      { name: 'open fds are flat', ok: fdsSlope <= FDS_SLOPE_MAX_H || fdsSlope * (seconds / 3600) <= FDS_NOISE, detail: `${fdsSlope.toFixed(1)} fds/h (bar ${FDS_SLOPE_MAX_H}, or a drift over the run within ${FDS_NOISE}: ${(fdsSlope * seconds / 3600).toFixed(1)}); ${settled[0]?.fds} → ${last.fds}` },
      // The copies went to the moving endpoints (so the balancer had state for them), or nothing was tested.
      { name: 'per-endpoint state does not grow with endpoints that come and go', ok: endpointsMoved >= 2 && copies > 0 && last.endpoints <= firstQuarter + 1, detail: `${endpointsMoved} mirror endpoints came and went, ${copies} copies sent to them; balancer endpoints ${samples[0]!.endpoints} at the start, at most ${firstQuarter} in the first quarter, ${last.endpoints} at the end` },
    ]
    return { did: `${Math.round(seconds / 60)} min of steady load, a new mirror endpoint every ${ENDPOINT_EVERY_S} s; ${samples.length} samples: ${JSON.stringify(samples.filter((_, j) => j % Math.max(1, Math.floor(samples.length / 12)) === 0).map((x) => [x.s, x.rssMiB, x.fds, x.endpoints, x.heapMiB, x.externalMiB, x.newSpaceMiB]))} (s, RSS MiB, fds, endpoints, heap MiB, external MiB, young generation MiB)`, checks }
  },
  async cleanup(mesh) {
    const routes = join(mesh.policyDir, '30-routes.yaml')
    await applyPolicy(mesh, () => {
      replaceFile(routes, readFileSync(routes, 'utf8').replace(ROUTE_MIRROR, ROUTE_FILTER))
      rmSync(join(mesh.policyDir, '49-soak-mirror.yaml'))
    })
  },
}
