// Policy benchmarks: the reload pipeline's cost (parse + schema, cross-references, compile)
// for 1,000 and 10,000 services with routes, and the latency from a file write to the new
// snapshot being in force (PolicyWatcher on real files, real inotify). No root needed.
import { mkdtempSync, renameSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { compile } from '../../policy/compile.ts'
import { indexDocs } from '../../policy/index-docs.ts'
import { hashFiles, parsePolicyFiles } from '../../policy/load.ts'
import { validateIndex } from '../../policy/validate.ts'
import { PolicyWatcher } from '../../policy/watcher.ts'
import { syntheticPolicy } from './policy-gen.ts'
import { median as med, percentile as pct } from './stats.ts'


export async function benchPolicyCompile(): Promise<void> {
  console.log('| services (+ routes, workloads) | YAML bytes | parse + schema ms | cross-refs ms | compile ms | total ms |')
  console.log('|---|---|---|---|---|---|')
  for (const n of [1000, 10000]) {
    const files = syntheticPolicy(n).map((f) => ({ path: `/bench/${f.name}`, text: f.text, sha256: f.name }))
    const rounds: number[][] = []
    for (let r = 0; r < 3; r++) {
      const t0 = performance.now()
      const parsed = parsePolicyFiles(files)
      const t1 = performance.now()
      const { index, problems } = indexDocs(parsed.docs)
      problems.push(...parsed.problems, ...validateIndex(index))
      const t2 = performance.now()
      if (problems.length) throw new Error(`synthetic policy is invalid: ${problems[0]!.message}`)
      const { snapshot } = compile(index, { generation: 1, hash: hashFiles(files), files: [], trustDomain: 'cluster.local', localNode: 'n0' })
      const t3 = performance.now()
      if (!snapshot || snapshot.services.size !== n) throw new Error('compile failed')
      rounds.push([t1 - t0, t2 - t1, t3 - t2, t3 - t0])
    }
    const bytes = files.reduce((a, f) => a + f.text.length, 0)
    const col = (i: number): string => med(rounds.map((r) => r[i]!)).toFixed(0)
    console.log(`| ${n} | ${(bytes / 1e6).toFixed(1)} MB | ${col(0)} | ${col(1)} | ${col(2)} | ${col(3)} |`)
  }
}

export async function benchPolicyReload(): Promise<void> {
  const services = 1000
  const writes = 60
  console.log('| services | layout | writes | p50 ms | p99 ms | max ms |')
  console.log('|---|---|---|---|---|---|')
  // One service per file (as Kubernetes manifests are often kept), 10, and 100 per file.
  for (const perFile of [1, 10, 100]) {
    const dir = mkdtempSync(join(tmpdir(), 'hostmesh-bench-reload-'))
    const files = syntheticPolicy(services, perFile)
    for (const f of files) writeFileSync(join(dir, f.name), f.text)
    const w = new PolicyWatcher({ dir, trustDomain: 'cluster.local', localNode: 'n0' })
    try {
      const first = await w.start()
      if (first.result !== 'success') throw new Error(`initial load failed: ${first.problems[0]?.message}`)
      const latencies: number[] = []
      const target = files[1]!
      for (let i = 0; i < writes; i++) {
        const text = target.text.replace(/name: w(\d+),/, `name: w$1, annotations: {rev: "${i}"},`)
        const done = new Promise<number>((resolve, reject) => {
          const timer = setTimeout(() => reject(new Error('no reload within 5 s')), 5000)
          w.once('snapshot', () => { clearTimeout(timer); resolve(performance.now()) })
        })
        const t0 = performance.now()
        // An atomic replace, as config management tools write files.
        writeFileSync(join(dir, `.${target.name}.tmp`), text)
        renameSync(join(dir, `.${target.name}.tmp`), join(dir, target.name))
        latencies.push((await done) - t0)
        await new Promise((r) => setTimeout(r, 30))
      }
      console.log(`| ${services} | ${perFile} per file (${files.length} files) | ${writes} | ${pct(latencies, 0.5).toFixed(1)} | ${pct(latencies, 0.99).toFixed(1)} | ${Math.max(...latencies).toFixed(1)} |`)
    } finally {
      await w.close()
      rmSync(dir, { recursive: true, force: true })
    }
  }
}
