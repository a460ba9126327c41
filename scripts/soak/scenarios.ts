// The soak's disturbances (issue #15), each run while the loads go on. A scenario acts for
// `seconds` (bounded: every loop stops at its deadline) and returns its own findings: what it
// did, and the checks that decide its verdict besides the loads' (0 failed).
import { readFileSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { HOSTS, type SoakMesh } from './mesh.ts'

export interface Check { readonly name: string; readonly ok: boolean; readonly detail: string }
export interface Disturbance { readonly did: string; readonly checks: readonly Check[] }

export interface Scenario {
  readonly name: string
  /** The bar, as issue #15 words it. */
  readonly bar: string
  run(mesh: SoakMesh, seconds: number): Promise<Disturbance>
}

/** Writes a policy file as editors and config managers do: a temporary file renamed over it. */
function replaceFile(path: string, text: string): void {
  const tmp = `${path}.soak-tmp`
  writeFileSync(tmp, text)
  renameSync(tmp, path)
}

async function generations(mesh: SoakMesh): Promise<Record<string, number>> {
  const out: Record<string, number> = {}
  for (const name of HOSTS) out[name] = (await mesh.policy(name)).generation
  return out
}

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

export const SCENARIOS: readonly Scenario[] = [policyChurn, badFile]
