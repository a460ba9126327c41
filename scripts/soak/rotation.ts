// Certificate rotation under load (issue #15), as docs/certs.md tells an operator to do it,
// on every host: the node CA replaced by a new one from the same root; a second root added to
// the bundle; node CAs re-issued from the second root; the old root removed. Each step is one
// file renamed into place per host, and the next waits until every host has re-issued all of
// its leaves. Besides, the soak's daemons run with `leafTtl: 1m`, so leaves also renew on their
// own every ~30 s. Long-lived TCP connections are open across all of it.
import { X509Certificate } from 'node:crypto'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { setTimeout as sleep } from 'node:timers/promises'
import { initRootCa, makeNodeCa } from '../../certs/ca-ops.ts'
import { HOSTS, type CertsView } from './mesh.ts'
import { replaceFile, type Check, type Scenario } from './scenario.ts'

/** Long-lived connections kept open across the rotations. */
const LONG_LIVED = 4
/** The steps take this share of the run; leaves renew by TTL (~30 s after the last step) in the rest. */
const STEPS_WITHIN = 0.4
/** The soak's leafTtl (scripts/soak/mesh.ts): a leaf is renewed at half of it, ±10%. */
const LEAF_TTL_S = 60
/** How long every host gets to re-issue its leaves after one step. */
const STEP_TIMEOUT_MS = 15_000

/** Serial numbers as /certs and node:crypto print them, compared as numbers. */
const serial = (s: string): string => s.replace(/[^0-9a-f]/gi, '').toLowerCase().replace(/^0+/, '')
const fingerprint = (pem: string): string => new X509Certificate(pem).fingerprint256.replace(/:/g, '').toLowerCase()

interface Step {
  readonly what: string
  /** Installs the change on every host; returns what each host's /certs must show after it. */
  act(): Promise<(c: CertsView) => boolean>
}

export const rotation: Scenario = {
  name: 'rotation',
  bar: '0 failed requests, 0 long-lived connections dropped',
  minSeconds: 10,
  async run(mesh, seconds) {
    const start = Date.now()
    const long = Promise.all(Array.from({ length: LONG_LIVED }, () => mesh.longLived(seconds)))
    // Awaited at the end; if a step throws first, its failure is not also an unhandled rejection.
    long.catch(() => undefined)
    const root1 = join(mesh.dir, 'root')
    const root2 = join(mesh.dir, 'root-2')
    const certDir = (host: string): string => join(mesh.dir, host, 'certs')
    const rootPem = (dir: string): string => readFileSync(join(dir, 'root-cert.pem'), 'utf8')
    // Every leaf serial each host has shown, by identity: the rotations it went through.
    const seen = new Map<string, Set<string>>()
    const look = async (): Promise<CertsView[]> => {
      const views = await Promise.all(HOSTS.map((h) => mesh.certs(h)))
      views.forEach((v, i) => { for (const id of v.identities) { const k = `${HOSTS[i]} ${id.identity}`; if (!seen.has(k)) seen.set(k, new Set()); seen.get(k)!.add(serial(id.serial)) } })
      return views
    }
    /** The node CA made from `caDir` for each host, installed key first (a cert without its key is refused, and the last good one kept). */
    const nodeCas = async (caDir: string, tag: string): Promise<(c: CertsView, host: string) => boolean> => {
      const serials = new Map<string, string>()
      for (const host of HOSTS) {
        const out = join(mesh.dir, `${tag}-${host}`)
        await makeNodeCa({ caDir, node: host, outDir: out })
        for (const f of ['ca-key.pem', 'ca-cert.pem']) replaceFile(join(certDir(host), f), readFileSync(join(out, f), 'utf8'), f === 'ca-key.pem' ? 0o600 : 0o644)
        serials.set(host, serial(new X509Certificate(readFileSync(join(out, 'ca-cert.pem'))).serialNumber))
      }
      return (c, host) => c.nodeCa !== null && serial(c.nodeCa.serial) === serials.get(host)
    }
    const bundle = (pems: string[]): (c: CertsView) => boolean => {
      for (const host of HOSTS) replaceFile(join(certDir(host), 'bundle.pem'), pems.join(''))
      const want = pems.map(fingerprint).sort().join()
      return (c) => c.bundle.roots.map((r) => r.sha256.replace(/:/g, '').toLowerCase()).sort().join() === want
    }
    let onNodeCa: (c: CertsView, host: string) => boolean = () => true
    const steps: Step[] = [
      { what: 'node CA replaced from the same root', async act() { onNodeCa = await nodeCas(root1, 'node-ca-2'); return () => true } },
      {
        what: 'a second root added to the bundle',
        async act() {
          await initRootCa({ dir: root2, trustDomain: 'cluster.local' })
          // `ca node` copies the root dir's bundle.pem: the two-root one, as docs/certs.md says.
          writeFileSync(join(root2, 'bundle.pem'), rootPem(root2) + rootPem(root1))
          return bundle([rootPem(root2), rootPem(root1)])
        },
      },
      { what: 'node CAs re-issued from the second root', async act() { onNodeCa = await nodeCas(root2, 'node-ca-3'); return () => true } },
      { what: 'the old root removed from the bundle', async act() { return bundle([rootPem(root2)]) } },
    ]
    const checks: Check[] = []
    for (const [i, step] of steps.entries()) {
      await sleep(Math.max(0, start + ((i + 1) * STEPS_WITHIN * seconds * 1000) / steps.length - Date.now()))
      const before = await look()
      const t0 = Date.now()
      const want = await step.act()
      // Done when every identity on every host has a new, Available leaf under what the step installed.
      const done = (views: CertsView[]): boolean => views.every((v, j) => {
        const old = new Map(before[j]!.identities.map((x) => [x.identity, serial(x.serial)]))
        return want(v) && onNodeCa(v, HOSTS[j]!) && v.identities.length > 0 && v.identities.every((x) => x.state === 'Available' && serial(x.serial) !== old.get(x.identity))
      })
      let views = before
      for (let k = 0; k < STEP_TIMEOUT_MS / 200 && !done(views); k++) {
        await sleep(200)
        views = await look()
      }
      const ok = done(views)
      checks.push({
        name: `every host re-issued its leaves: ${step.what}`,
        ok,
        detail: ok ? `in ${Date.now() - t0} ms` : `not within ${STEP_TIMEOUT_MS} ms: ${JSON.stringify(views.map((v, j) => ({ host: HOSTS[j], lastError: v.lastError, nodeCa: v.nodeCa?.serial, roots: v.bundle.roots.length, leaves: v.identities.map((x) => `${x.state} ${x.serial}`) })))}`.slice(0, 600),
      })
      if (!ok) break
    }
    // Leaf renewals by TTL go on until the end.
    while (Date.now() < start + seconds * 1000) {
      await look()
      await sleep(Math.min(1000, Math.max(0, start + seconds * 1000 - Date.now())))
    }
    // The pooled sessions the loads ride on were all opened before the last step. The first
    // call from checkout to the fraud scorer opens a new one (another identity pair), whose
    // handshake both ends verify with only the second root in their bundles.
    const fraud = await mesh.startFraudServer()
    const status = await mesh.checkoutGet('http://10.96.0.30/score').finally(() => fraud.stop())
    checks.push({ name: 'a new HBONE session after the old root was removed', ok: status === 200, detail: `checkout → fraud (node-c), a session no load had opened: HTTP ${status}` })
    const conns = await long
    const dropped = conns.filter((c) => !c.ok)
    checks.push({ name: 'no long-lived connection was dropped', ok: dropped.length === 0, detail: `${LONG_LIVED - dropped.length} of ${LONG_LIVED} open ${Math.round(Math.min(...conns.map((c) => c.ms)) / 1000)} s or more, every byte echoed${dropped.length ? `; dropped: ${JSON.stringify(dropped)}` : ''}` })
    const rotations = [...seen.values()].map((s) => s.size - 1)
    // A run long enough for a renewal after the last step must show one on every leaf.
    if (seconds * (1 - STEPS_WITHIN) > LEAF_TTL_S * 0.55) {
      checks.push({ name: 'every leaf was also renewed by its TTL', ok: Math.min(...rotations) > steps.length, detail: `${Math.min(...rotations)}–${Math.max(...rotations)} new leaves per identity, ${steps.length} of them from the steps (leafTtl ${LEAF_TTL_S} s)` })
    }
    return {
      did: `${steps.length} rotation steps on every host, ${Math.round((STEPS_WITHIN * seconds) / steps.length)} s apart; every leaf rotated ${Math.min(...rotations)}–${Math.max(...rotations)} times (the steps, and renewals at leafTtl ${LEAF_TTL_S} s)`,
      checks,
    }
  },
}
