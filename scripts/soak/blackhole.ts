// A black-holed peer under load (issue #15): every packet between node-a and node-c is
// dropped for a while (iptables DROP both ways in node-c's namespace, IPv4 and IPv6), then
// the path comes back. Nothing closes anything, so only the HTTP/2 PING keepalive
// (`hbone.keepaliveInterval`/`keepaliveTimeout`: 2 s each in the soak) can tell the sessions
// are dead. Callers must fail within the connect timeout (payments-v2's set to 3 s here), not
// hang, and recover once the path is back, without a restart of any hostmesh.
import { rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { total } from '../demo/telemetry.ts'
import type { SoakMesh } from './mesh.ts'
import { applyPolicy, tcpWaitCheck, type Scenario } from './scenario.ts'

/** payments-v2's connectTimeout here (prepare): shorter than the load clients' own 10 s, so a caller that waits it out is seen. */
const CONNECT_TIMEOUT_MS = 3000
const DESTINATION = `apiVersion: hostmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: soak-payments-v2, namespace: shop}
spec:
  targetRefs: [{kind: Service, name: payments-v2}]
  connectionPool: {connectTimeout: 3s}
`

/** The soak's keepalive (scripts/soak/mesh.ts): a dead session is seen within interval + timeout, plus one interval of phase. */
const KEEPALIVE_MS = 2000

/** The DROP rules in node-c's namespace, added (`-I`) or removed (`-D`). */
async function blackhole(mesh: SoakMesh, op: '-I' | '-D'): Promise<void> {
  const a = mesh.host('node-a')
  const c = mesh.host('node-c')
  for (const [tool, peer] of [['iptables', a.ipv4], ['ip6tables', a.ipv6]] as const) {
    await c.mustExec([tool, op, 'INPUT', '-s', peer, '-j', 'DROP'])
    await c.mustExec([tool, op, 'OUTPUT', '-d', peer, '-j', 'DROP'])
  }
}

/** The histogram bucket at or above the connect timeout (Envoy's buckets: …, 2500, 5000, …). */
const HELD_MS = 5000

/** node-a's source-side requests so far: all of them, and those that took longer than HELD_MS. */
async function heldLong(mesh: SoakMesh): Promise<{ all: number; count: number }> {
  const m = await mesh.metrics('node-a')
  const bucket = (le: string): number => total(m, 'istio_request_duration_milliseconds_bucket', { reporter: 'source', le })
  return { all: bucket('+Inf'), count: bucket('+Inf') - bucket(String(HELD_MS)) }
}

const deadSessions = async (mesh: SoakMesh): Promise<number> => total(await mesh.metrics('node-c'), 'hostmesh_hbone_sessions_closed_total', { reason: 'keepalive' })

export const peerBlackhole: Scenario = {
  name: 'peer-blackhole',
  bar: 'a black-holed peer\'s sessions are declared dead by PING keepalive; callers fail within the connect timeout and recover, no hostmesh restarted',
  // node-c carries payments-v2, 10% of both loads: those fail while the path is gone.
  httpSuccess: 0,
  tcpSuccess: 0,
  minSeconds: 16,
  async prepare(mesh) {
    await applyPolicy(mesh, () => writeFileSync(join(mesh.policyDir, '48-soak-connect-timeout.yaml'), DESTINATION))
  },
  async cleanup(mesh) {
    await applyPolicy(mesh, () => rmSync(join(mesh.policyDir, '48-soak-connect-timeout.yaml')))
  },
  async run(mesh, seconds) {
    const start = Date.now()
    const pids = new Map([...mesh.daemons].map(([name, d]) => [name, d.pid]))
    const holeFor = Math.max(8, seconds / 4) * 1000
    await sleep((seconds * 1000) / 4)
    const deadBefore = await deadSessions(mesh)
    const heldBefore = await heldLong(mesh)
    const servedBefore = mesh.requestsServed('node-c')
    const holeAt = Date.now()
    await blackhole(mesh, '-I')
    let detectedMs: number | undefined
    try {
      while (Date.now() < holeAt + holeFor) {
        if (detectedMs === undefined && await deadSessions(mesh) > deadBefore) detectedMs = Date.now() - holeAt
        await sleep(200)
      }
    } finally {
      await blackhole(mesh, '-D')
    }
    const servedDuring = mesh.requestsServed('node-c')
    const backAt = Date.now()
    await sleep(Math.max(0, start + seconds * 1000 - Date.now()))
    let served = 0
    for (let i = 0; i < 50 && served === 0; i++) {
      served = mesh.requestsServed('node-c') - servedDuring
      if (served === 0) await sleep(100)
    }
    const held = await heldLong(mesh)
    const restarted = [...mesh.daemons].filter(([name, d]) => d.pid !== pids.get(name) || !d.running).map(([name]) => name)
    return {
      did: `every packet between node-a and node-c dropped ${Math.round((holeAt - start) / 1000)} s in, for ${Math.round(holeFor / 1000)} s`,
      checks: [
        {
          name: 'node-c declared node-a\'s sessions dead by PING keepalive',
          ok: detectedMs !== undefined && detectedMs <= 3 * KEEPALIVE_MS + 1000,
          detail: detectedMs === undefined ? 'hostmesh_hbone_sessions_closed_total{reason="keepalive"} did not move' : `${detectedMs} ms after the path went (keepaliveInterval and keepaliveTimeout 2 s)`,
        },
        { name: 'node-a held no HTTP request past the connect timeout', ok: held.count - heldBefore.count === 0 && held.all > heldBefore.all, detail: `${held.count - heldBefore.count} of ${held.all - heldBefore.all} requests took node-a's hostmesh longer than ${HELD_MS} ms (istio_request_duration_milliseconds, reporter source)` },
        { name: 'payments-v2 served requests again once the path was back', ok: served > 0, detail: `${served} requests reached payments-v2 in the ${Math.round((Date.now() - backAt) / 1000)} s after; ${servedDuring - servedBefore} during the black hole` },
        { name: 'no hostmesh was restarted', ok: restarted.length === 0, detail: restarted.length ? `restarted: ${restarted.join(', ')}` : 'every daemon kept its pid' },
      ],
    }
  },
  // The HTTP client's own view is not the bar here: 20 req/s to payments-v2, each answered
  // 504 at the route's 2 s, queue behind each other on its 8 connections for as long as the
  // path is gone. What the mesh held each request is (run(), from node-a's histogram).
  loadChecks: (_http, tcp) => [tcpWaitCheck(tcp, CONNECT_TIMEOUT_MS, 1000)],
}
