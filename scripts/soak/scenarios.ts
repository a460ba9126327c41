// The soak's disturbances (issue #15), each run while the loads go on. A scenario acts for
// `seconds` (bounded: every loop stops at its deadline) and returns its own findings: what it
// did, and the checks that decide its verdict besides the loads' (0 failed).
import { readFileSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { total } from '../demo/telemetry.ts'
import { HOSTS } from './mesh.ts'
import { rotation } from './rotation.ts'
import { peerBlackhole } from './blackhole.ts'
import { HOSTILE } from './hostile.ts'
import { applyPolicy, failFastChecks, generations, replaceFile, type Check, type Scenario } from './scenario.ts'

export type { Check, Scenario } from './scenario.ts'


// An AuthorizationPolicy on the fraud scorer, which the loads never call: its two versions
// differ, so each write is a new snapshot on every host, and neither touches checkout → payments.
const AUTHZ = (ns: string): string => `apiVersion: hostmesh.io/v1alpha1
kind: AuthorizationPolicy
metadata: {name: soak-fraud-audit, namespace: shop}
spec:
  selector: {matchLabels: {app: fraud}}
  action: DENY
  rules:
    - from: [{source: {namespaces: [${ns}]}}]
`

/** Policy rewritten every 100 ms: the canary's weights flip 90/10 ↔ 10/90 (HTTP and TCP), and an AuthorizationPolicy that does not touch the callers alternates. */
export const policyChurn: Scenario = {
  name: 'policy-churn',
  bar: '0 failed requests or connections',
  async run(mesh, seconds) {
    const routes = join(mesh.policyDir, '30-routes.yaml')
    const original = readFileSync(routes, 'utf8')
    const flipped = original.replaceAll('weight: 90', 'weight: __A').replaceAll('weight: 10', 'weight: 90').replaceAll('weight: __A', 'weight: 10')
    if (flipped === original) throw new Error(`${routes}: no 90/10 weights to flip`)
    const authz = join(mesh.policyDir, '45-soak-authz.yaml')
    const before = await generations(mesh)
    const start = Date.now()
    const deadline = start + seconds * 1000
    let writes = 0
    for (let i = 0; i < seconds * 10 && Date.now() < deadline; i++) {
      const odd = writes % 2 === 1
      replaceFile(routes, odd ? original : flipped)
      replaceFile(authz, AUTHZ(odd ? 'ops' : 'lab'))
      writes++
      // On a 100 ms cadence, whatever the writes took.
      await sleep(Math.max(0, start + (i + 1) * 100 - Date.now()))
    }
    replaceFile(routes, original)
    rmSync(authz, { force: true })
    await sleep(1500)
    const after = await generations(mesh)
    const checks: Check[] = HOSTS.map((name) => ({
      name: `${name} followed the rewrites`,
      ok: after[name]! - before[name]! >= 2,
      detail: `generation ${before[name]} → ${after[name]}`,
    }))
    for (const name of HOSTS) {
      const p = await mesh.policy(name)
      checks.push({ name: `${name} ends on the last good policy, no error`, ok: p.lastError === null, detail: p.lastError ? p.lastError.problems.slice(0, 2).join('; ') : `generation ${p.generation}` })
    }
    return { did: `${writes} rewrites of 30-routes.yaml and 45-soak-authz.yaml, 100 ms apart`, checks }
  },
}

// YAML that does not parse: an unclosed flow mapping on line 3.
const BROKEN = `apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: broken, namespace: shop
spec: {ports: [{port: 80}]}
`

/** A malformed file dropped in and removed every second: the last good policy stays, and each failure is in /config_dump with file:line. */
export const badFile: Scenario = {
  name: 'bad-file',
  bar: '0 failed, last good policy in force, each failure in /config_dump with file:line',
  async run(mesh, seconds) {
    const file = join(mesh.policyDir, '55-soak-broken.yaml')
    const good = await mesh.policy('node-a')
    const deadline = Date.now() + seconds * 1000
    let drops = 0
    let seen = 0
    const misses: string[] = []
    const hashes = new Set<string | null>()
    for (let i = 0; i < seconds && Date.now() < deadline; i++) {
      const started = Date.now()
      writeFileSync(file, BROKEN)
      drops++
      // Within 800 ms node-a's /config_dump must show this file's problem with its line.
      let shown = false
      for (let j = 0; j < 16 && !shown; j++) {
        await sleep(50)
        const p = await mesh.policy('node-a')
        hashes.add(p.hash)
        shown = p.lastError?.problems.some((x) => x.includes('55-soak-broken.yaml:')) ?? false
        if (shown && !/55-soak-broken\.yaml:\d+:\d+/.test(p.lastError!.problems.join('\n'))) misses.push(`drop ${drops}: no line:col in ${p.lastError!.problems[0]}`)
      }
      if (shown) seen++
      else misses.push(`drop ${drops}: not in /config_dump within 800 ms`)
      rmSync(file, { force: true })
      await sleep(Math.max(0, 1000 - (Date.now() - started)))
    }
    rmSync(file, { force: true })
    await sleep(1000)
    const end = await mesh.policy('node-a')
    hashes.add(end.hash)
    return {
      did: `${drops} drops of 55-soak-broken.yaml, each removed once reported`,
      checks: [
        { name: 'each failure was in /config_dump with file:line:col', ok: seen === drops && misses.length === 0, detail: `${seen} of ${drops}${misses.length ? `; ${misses.slice(0, 3).join('; ')}` : ''}` },
        { name: 'the last good policy stayed in force throughout', ok: hashes.size === 1 && hashes.has(good.hash), detail: `policy hashes seen: ${[...hashes].map((h) => String(h).slice(0, 12)).join(', ')}` },
        { name: 'no error once the file is gone', ok: end.lastError === null, detail: end.lastError ? end.lastError.problems[0] ?? end.lastError.reason : 'none' },
      ],
    }
  },
}


const ROUTE_SPLIT = `      backendRefs:
        - {name: payments-v1, port: 80, weight: 90}
        - {name: payments-v2, port: 80, weight: 10}
      timeouts: {request: 5s, backendRequest: 2s}`
// Retries go to an endpoint not tried yet in the same backend Service: so the route sends to
// the Service with both versions, and the dead endpoint's requests are retried on the other.
const ROUTE_RETRY = `      backendRefs: [{name: payments, port: 80}]
      timeouts: {request: 5s, backendRequest: 2s}
      retry: {attempts: 3, codes: [502, 503, 504], backoff: 25ms}`
const OUTLIER = `apiVersion: hostmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: soak-payments, namespace: shop}
spec:
  targetRefs: [{kind: Service, name: payments}]
  outlierDetection: {consecutive5xxErrors: 3, consecutiveGatewayErrors: 3, interval: 1s, baseEjectionTime: 5s, maxEjectionPercent: 50}
  retryBudget: {percent: 50, minRetriesPerSecond: 100}
`
const CLUSTER = 'shop/payments:80'

/** payments-v1's HTTP server on node-b killed (SIGKILL) mid-load, and started again. */
export const endpointRestart: Scenario = {
  name: 'endpoint-restart',
  bar: '≥ 99.9% success with retries, ejected within consecutive5xxErrors, back after recovery',
  httpSuccess: 0.999,
  // A quarter up, a quarter (at least 3 s) down, then the 5 s ejection must run out under load.
  minSeconds: 12,
  async prepare(mesh) {
    const routes = join(mesh.policyDir, '30-routes.yaml')
    await applyPolicy(mesh, () => {
      const text = readFileSync(routes, 'utf8')
      if (!text.includes(ROUTE_SPLIT)) throw new Error(`${routes}: the canary rule is not the one the soak knows`)
      replaceFile(routes, text.replace(ROUTE_SPLIT, ROUTE_RETRY))
      replaceFile(join(mesh.policyDir, '48-soak-outlier.yaml'), OUTLIER)
    })
  },
  async run(mesh, seconds) {
    const start = Date.now()
    const downFor = Math.max(3, seconds / 4) * 1000
    await sleep((seconds * 1000) / 4)
    const retries = async (): Promise<number> => total(await mesh.metrics('node-a'), 'hostmesh_retries_total', { result: 'success' })
    const retriedBefore = await retries()
    const killedAt = Date.now()
    await mesh.httpServers.get('node-b')!.stop('SIGKILL')
    let ejectedMs: number | undefined
    for (let i = 0; i < downFor / 100 && ejectedMs === undefined; i++) {
      const b = (await mesh.clusterHosts(CLUSTER)).find((h) => h.node === 'node-b')
      if (b?.health === 'EJECTED') ejectedMs = Date.now() - killedAt
      else await sleep(100)
    }
    await sleep(Math.max(0, killedAt + downFor - Date.now()))
    await mesh.startHttpServer('node-b')
    const restartedAt = Date.now()
    await sleep(Math.max(0, start + seconds * 1000 - Date.now()))
    // Back: out of ejection (baseEjectionTime 5 s) and answering requests again.
    let served = 0
    let health = ''
    for (let i = 0; i < 100; i++) {
      served = mesh.requestsServed('node-b')
      health = (await mesh.clusterHosts(CLUSTER)).find((h) => h.node === 'node-b')?.health ?? 'absent'
      if (served > 0 && health !== 'EJECTED') break
      await sleep(100)
    }
    return {
      did: `node-b's payments HTTP server killed (SIGKILL) ${Math.round((killedAt - start) / 1000)} s in, down ${Math.round(downFor / 1000)} s, then started again`,
      checks: [
        // The kill was felt: requests to the dead endpoint failed and were retried elsewhere.
        { name: 'requests that met the dead endpoint were retried on the other', ok: (await retries()) > retriedBefore, detail: `${(await retries()) - retriedBefore} retries that succeeded (node-a, hostmesh_retries_total{result="success"})` },
        { name: 'node-b\'s endpoint was ejected while it was down', ok: ejectedMs !== undefined, detail: ejectedMs === undefined ? 'never seen ejected' : `ejected ${ejectedMs} ms after the kill (consecutive5xxErrors 3, consecutiveGatewayErrors 3)` },
        { name: 'node-b\'s endpoint was back after recovery', ok: served > 0 && health !== 'EJECTED', detail: `${served} requests served by the restarted server, ${Math.round((Date.now() - restartedAt) / 1000)} s after its start; health ${health}` },
      ],
    }
  },
  async cleanup(mesh) {
    const routes = join(mesh.policyDir, '30-routes.yaml')
    await applyPolicy(mesh, () => {
      replaceFile(routes, readFileSync(routes, 'utf8').replace(ROUTE_RETRY, ROUTE_SPLIT))
      rmSync(join(mesh.policyDir, '48-soak-outlier.yaml'))
    })
  },
}

/** node-c's hostmesh killed with SIGKILL under load and started again: callers fail fast and recover, their own hostmesh untouched. */
export const peerKill: Scenario = {
  name: 'peer-kill',
  bar: 'callers fail fast (no hang beyond the connect timeout), recover without restarting their hostmesh',
  // node-c carries payments-v2, 10% of both loads: those fail while it is down.
  httpSuccess: 0,
  tcpSuccess: 0,
  minSeconds: 12,
  async run(mesh, seconds) {
    const start = Date.now()
    const downFor = Math.max(3, seconds / 4) * 1000
    const callerPid = mesh.daemons.get('node-a')!.pid
    await sleep((seconds * 1000) / 4)
    const killedAt = Date.now()
    await mesh.killDaemon('node-c')
    await sleep(downFor)
    const servedBefore = mesh.requestsServed('node-c')
    await mesh.startDaemon('node-c')
    const restartedMs = Date.now() - killedAt
    await sleep(Math.max(0, start + seconds * 1000 - Date.now()))
    let served = 0
    for (let i = 0; i < 50 && served === 0; i++) {
      served = mesh.requestsServed('node-c') - servedBefore
      if (served === 0) await sleep(100)
    }
    return {
      did: `node-c's hostmesh killed (SIGKILL) ${Math.round((killedAt - start) / 1000)} s in, ready again ${Math.round(restartedMs / 1000)} s later`,
      checks: [
        { name: 'payments-v2 served requests again once node-c\'s hostmesh was back', ok: served > 0, detail: `${served} requests reached payments-v2 after the restart` },
        { name: 'the callers\' hostmesh was not restarted', ok: mesh.daemons.get('node-a')!.pid === callerPid && mesh.daemons.get('node-a')!.running, detail: `node-a's daemon pid ${callerPid}` },
      ],
    }
  },
  loadChecks: failFastChecks,
}

/** `systemctl restart` of the callers' host (node-a: outbound ports from the fd store), then of the servers' (node-b: :15008 from the socket unit). */
export const restart: Scenario = {
  name: 'restart',
  bar: '0 refused connections and 0 failed requests, in-flight HTTP requests included',
  minSeconds: 9,
  async run(mesh, seconds) {
    const start = Date.now()
    const took: string[] = []
    const checks: Check[] = []
    for (const [i, name] of (['node-a', 'node-b'] as const).entries()) {
      await sleep(Math.max(0, start + ((i + 1) * seconds * 1000) / 3 - Date.now()))
      const logFile = join(mesh.dir, name, 'daemon.log')
      const logBefore = readFileSync(logFile, 'utf8').length
      const { drainMs, startMs } = await mesh.restartDaemon(name)
      took.push(`${name}: drained in ${(drainMs / 1000).toFixed(1)} s, ready ${(startMs / 1000).toFixed(1)} s after`)
      // The restart's gap is the drain plus the start: a drain held to its deadline (or a
      // process held open after it) is what made requests time out in the backlog.
      const held = readFileSync(logFile, 'utf8').slice(logBefore).split('\n').filter((l) => /drain time is up|still held the event loop/.test(l))
      checks.push({ name: `${name}'s drain ended with its last connection`, ok: held.length === 0, detail: held.length === 0 ? `drained in ${drainMs} ms (drainSeconds 2)` : held.join(' ').slice(0, 400) })
    }
    await sleep(Math.max(0, start + seconds * 1000 - Date.now()))
    return { did: `node-a then node-b restarted under load (${took.join(', ')})`, checks }
  },
}

export const SCENARIOS: readonly Scenario[] = [policyChurn, badFile, rotation, endpointRestart, peerKill, peerBlackhole, restart, ...HOSTILE]

/** Names `--only` takes for a group of scenarios. */
export const GROUPS: Readonly<Record<string, readonly string[]>> = { hostile: HOSTILE.map((s) => s.name) }
