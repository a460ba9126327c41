// The watcher on real files and real inotify (chokidar): atomic renames, ConfigMap symlink
// swaps, bursts, bad changes, empty dirs. Every wait is bounded.
import { cpSync, mkdirSync, mkdtempSync, readFileSync, renameSync, rmSync, symlinkSync, writeFileSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t, { type Test } from 'tap'
import { PolicyWatcher, type ReloadEvent } from '../../../policy/watcher.ts'

const EXAMPLES = new URL('../../../policy/examples/', import.meta.url).pathname
const OPTS = { trustDomain: 'cluster.local', localNode: 'node-a', reservedPorts: [15000, 15006, 15008] }

function freshDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-watch-'))
  cpSync(EXAMPLES, dir, { recursive: true })
  return dir
}

async function started(t: Test, dir: string, extra: Partial<ConstructorParameters<typeof PolicyWatcher>[0]> = {}): Promise<{ w: PolicyWatcher; events: ReloadEvent[] }> {
  const w = new PolicyWatcher({ dir, ...OPTS, ...extra })
  const events: ReloadEvent[] = []
  w.on('reload', (e) => {
    events.push(e)
    if (process.env.WDEBUG) process.stderr.write(`[${Date.now() % 100000}] ${e.reason} ${e.result} gen=${e.generation} ${e.problems.map((p) => `${p.line} ${p.message.slice(0, 60)}`).join(' | ')}\n`)
  })
  t.teardown(() => w.close())
  const first = await w.start()
  t.equal(first.result, 'success', `first load: ${first.problems.map((p) => p.message).join('; ')}`)
  return { w, events }
}

function next(w: PolicyWatcher, pred: (e: ReloadEvent) => boolean = (e) => e.result !== 'unchanged', timeoutMs = 5000): Promise<ReloadEvent> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => { w.off('reload', on); reject(new Error(`no matching reload within ${timeoutMs} ms`)) }, timeoutMs)
    const on = (e: ReloadEvent): void => { if (pred(e)) { clearTimeout(timer); w.off('reload', on); resolve(e) } }
    w.on('reload', on)
  })
}

const sleep = (ms: number): Promise<void> => new Promise((r) => setTimeout(r, ms))
const withAnnotation = (text: string, v: string): string => text.replace('metadata:\n  name: node-a\n', `metadata:\n  name: node-a\n  annotations: {rev: "${v}"}\n`)

t.test('an atomic rename installs the new policy', async (t) => {
  const dir = freshDir()
  const { w } = await started(t, dir)
  const gen1 = w.current!
  const path = join(dir, '20-services.yaml')
  const changed = readFileSync(path, 'utf8').replace('addresses: [10.96.0.10]', 'addresses: [10.96.0.11]')
  const reload = next(w)
  writeFileSync(join(dir, '.20-services.yaml.tmp'), changed)
  renameSync(join(dir, '.20-services.yaml.tmp'), path)
  const e = await reload
  t.equal(e.result, 'success')
  t.equal(w.current!.generation, gen1.generation + 1)
  t.not(w.current!.hash, gen1.hash)
  t.equal(w.current!.services.get('shop/checkout')!.addresses[0], '10.96.0.11')
})

t.test('a Kubernetes ConfigMap ..data symlink swap installs the new policy', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-cm-'))
  const v1 = join(dir, '..2026_11_25_10_00_00.1')
  cpSync(EXAMPLES, v1, { recursive: true })
  symlinkSync('..2026_11_25_10_00_00.1', join(dir, '..data'))
  for (const f of readdirSync(v1)) symlinkSync(join('..data', f), join(dir, f))
  const { w } = await started(t, dir)
  t.equal(w.current!.files.length, 5, 'policy read through the symlinks')
  // What the kubelet does: new timestamped dir, new ..data link renamed over the old, old dir removed.
  const v2 = join(dir, '..2026_11_25_10_05_00.2')
  cpSync(EXAMPLES, v2, { recursive: true })
  writeFileSync(join(v2, '00-nodes.yaml'), withAnnotation(readFileSync(join(v2, '00-nodes.yaml'), 'utf8'), 'v2'))
  const reload = next(w)
  symlinkSync('..2026_11_25_10_05_00.2', join(dir, '..data_tmp'))
  renameSync(join(dir, '..data_tmp'), join(dir, '..data'))
  rmSync(v1, { recursive: true })
  t.equal((await reload).result, 'success')
  t.equal(w.current!.generation, 2)
  const { createHash } = await import('node:crypto')
  const v2sha = createHash('sha256').update(readFileSync(join(v2, '00-nodes.yaml'))).digest('hex')
  t.equal(w.current!.files.find((f) => f.path.endsWith('00-nodes.yaml'))!.sha256, v2sha, 'the snapshot holds the new version')
})

t.test('a burst of 50 writes gives one or a few reloads, ending on the last content', async (t) => {
  const dir = freshDir()
  const { w, events } = await started(t, dir, { debounceMs: 20, maxDelayMs: 250 })
  const path = join(dir, '00-nodes.yaml')
  const original = readFileSync(path, 'utf8')
  const before = events.length
  for (let i = 1; i <= 50; i++) writeFileSync(path, withAnnotation(original, String(i)))
  // Bounded wait for the watcher to settle: no reload for 300 ms, at most 5 s.
  const deadline = Date.now() + 5000
  let last = -1
  while (Date.now() < deadline && (events.length !== last || events.length === before)) {
    last = events.length
    await sleep(300)
  }
  const successes = events.slice(before).filter((e) => e.result === 'success').length
  t.ok(successes >= 1 && successes <= 5, `${successes} successful reload(s) for 50 writes`)
  t.equal(w.current!.generation, 1 + successes)
  const { createHash } = await import('node:crypto')
  t.equal(w.current!.files.find((f) => f.path === path)!.sha256, createHash('sha256').update(withAnnotation(original, '50')).digest('hex'), 'the snapshot holds the last write')
})

t.test('a bad change keeps the last good snapshot and records the error', async (t) => {
  const dir = freshDir()
  const { w } = await started(t, dir)
  const good = w.current!
  const reload = next(w)
  writeFileSync(join(dir, '30-routes.yaml'), readFileSync(join(dir, '30-routes.yaml'), 'utf8').replace('weight: 90', 'weight: ninety'))
  const e = await reload
  t.equal(e.result, 'failure')
  t.equal(w.current, good, 'the same snapshot object stays in force')
  t.match(w.lastError, { reason: 'watch', problems: [{ file: join(dir, '30-routes.yaml'), key: 'spec.rules[1].backendRefs[0].weight', message: /expected a number, got "ninety"/ }] })
  t.ok(w.lastError!.problems[0]!.line > 1)

  const fixed = next(w)
  writeFileSync(join(dir, '30-routes.yaml'), readFileSync(join(EXAMPLES, '30-routes.yaml'), 'utf8'))
  t.equal((await fixed).result, 'success')
  t.equal(w.lastError, undefined, 'a success clears the error')
  t.equal(w.current!.generation, good.generation + 1)
})

t.test('an empty or missing dir is refused after a policy was loaded, unless allowed', async (t) => {
  const dir = freshDir()
  const { w } = await started(t, dir)
  const good = w.current!
  const reload = next(w, (e) => e.result === 'failure')
  for (const f of readdirSync(dir)) rmSync(join(dir, f))
  t.match((await reload).problems[0]!.message, /holds no policy file; keeping the last good policy \(generation 1\)/)
  t.equal(w.current, good)
  rmSync(dir, { recursive: true })
  const e1 = await w.reload('SIGHUP')
  t.equal(e1.result, 'failure')
  t.match(e1.problems[0]!.message, /the policy dir is missing; keeping the last good policy/)
  t.equal(w.current, good)

  const dir2 = freshDir()
  const { w: w2 } = await started(t, dir2, { allowEmpty: true })
  for (const f of readdirSync(dir2)) rmSync(join(dir2, f))
  const e = await w2.reload('SIGHUP')
  t.equal(e.result, 'success', 'allowEmpty: an empty policy is installed')
  t.equal(w2.current!.files.length, 0)
})

t.test('a truncated or comments-only file cannot wipe the policy either', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-trunc-'))
  const all = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).map((f) => readFileSync(join(EXAMPLES, f), 'utf8')).join('---\n')
  writeFileSync(join(dir, 'policy.yaml'), all)
  const { w } = await started(t, dir)
  const good = w.current!
  const reload = next(w)
  writeFileSync(join(dir, 'policy.yaml'), '# being rewritten\n')
  const e = await reload
  t.equal(e.result, 'failure')
  t.match(e.problems[0]!.message, /holds no policy document; keeping the last good policy/)
  t.equal(w.current, good)
})

t.test('a file that cannot be read fails the reload, and is retried once it is gone', async (t) => {
  const dir = freshDir()
  const { w } = await started(t, dir)
  const failed = next(w)
  symlinkSync('..nowhere/gone.yaml', join(dir, '50-dangling.yaml'))
  const e = await failed
  t.equal(e.result, 'failure')
  t.match(e.problems[0], { file: join(dir, '50-dangling.yaml'), message: /ENOENT/ })
  const recovered = next(w)
  rmSync(join(dir, '50-dangling.yaml'))
  const r = await recovered
  t.equal(r.result, 'success', 'the same bytes as before the failure are not "unchanged"')
  t.equal(w.lastError, undefined)
})

t.test('a reload reuses what did not change and recompiles what depends on a change', async (t) => {
  const dir = freshDir()
  const { w } = await started(t, dir)
  const s1 = w.current!
  const eps1 = s1.servicePorts.get('shop/payments:80')!.endpoints
  const rules1 = s1.servicePorts.get('shop/payments:80')!.route
  // 1. An unrelated edit: payments' compiled parts are the very same objects.
  let reload = next(w)
  writeFileSync(join(dir, '40-policies.yaml'), readFileSync(join(dir, '40-policies.yaml'), 'utf8').replace('maxTokens: 100', 'maxTokens: 101'))
  t.equal((await reload).result, 'success')
  const s2 = w.current!
  t.equal(s2.servicePorts.get('shop/payments:80')!.endpoints, eps1, 'endpoints reused')
  t.equal(s2.services.get('shop/fraud')!.destination.rateLimit!.maxTokens, 101, 'the changed policy is recompiled')
  // 2. A node moves: the endpoints of its workloads follow, though their own documents did not change.
  reload = next(w)
  writeFileSync(join(dir, '00-nodes.yaml'), readFileSync(join(dir, '00-nodes.yaml'), 'utf8').replace('10.77.0.12, "fd77::12"', '10.77.0.22, "fd77::22"'))
  t.equal((await reload).result, 'success')
  const eps3 = w.current!.servicePorts.get('shop/payments:80')!.endpoints
  t.not(eps3, eps1)
  t.same(eps3.map((e) => e.address), ['10.77.0.22', '10.77.0.13'])
  t.same(w.current!.workloads.get('shop/payments-v1')!.addresses, ['10.77.0.22', 'fd77::22'])
  t.equal(w.current!.servicePorts.get('shop/payments:80')!.route, w.current!.servicePorts.get('shop/payments:80')!.route)
  // 3. A route edit: the port's rules are recompiled.
  reload = next(w)
  writeFileSync(join(dir, '30-routes.yaml'), readFileSync(join(dir, '30-routes.yaml'), 'utf8').replace('weight: 90}', 'weight: 80}'))
  t.equal((await reload).result, 'success')
  const route = w.current!.servicePorts.get('shop/payments:80')!.route
  t.not(route, rules1)
  t.same(route?.kind === 'http' && route.rules.find((r) => r.rule === 1)!.backends.cumulative, [80, 90])
})

t.test('no reload runs after close()', async (t) => {
  const dir = freshDir()
  const w = new PolicyWatcher({ dir, ...OPTS })
  await w.start()
  const events: ReloadEvent[] = []
  w.on('snapshot', () => events.push({} as ReloadEvent))
  const pending = [w.reload('SIGHUP'), w.reload('SIGHUP')]
  await w.close()
  await Promise.all(pending)
  const after = await w.reload('SIGHUP')
  t.equal(after.result, 'unchanged', 'a reload asked for after close does nothing')
  const count = events.length
  await sleep(100)
  t.equal(events.length, count)
})

t.test('an empty or missing dir at start is an empty policy', async (t) => {
  const dir = join(mkdtempSync(join(tmpdir(), 'hostmesh-none-')), 'policy.d')
  // A dir that appears later is seen by inotify once it exists, or at the latest by the resync.
  const { w } = await started(t, dir, { resyncMs: 500 })
  t.equal(w.current!.files.length, 0)
  mkdirSync(dir)
  const reload = next(w, (e) => e.result === 'success')
  writeFileSync(join(dir, '00-nodes.yaml'), readFileSync(join(EXAMPLES, '00-nodes.yaml'), 'utf8'))
  await reload
  t.equal(w.current!.nodes.size, 3, 'a dir created later is picked up')
})

t.test('unchanged bytes do not reload; SIGHUP forces a rebuild', async (t) => {
  const dir = freshDir()
  const { w } = await started(t, dir)
  const touched = next(w, () => true)
  writeFileSync(join(dir, '00-nodes.yaml'), readFileSync(join(dir, '00-nodes.yaml')))
  t.equal((await touched).result, 'unchanged')
  t.equal(w.current!.generation, 1)
  t.equal((await w.reload('SIGHUP')).result, 'success')
  t.equal(w.current!.generation, 2)
})

t.test('concurrent reload requests coalesce', async (t) => {
  const dir = freshDir()
  const { w, events } = await started(t, dir)
  const before = events.length
  const calls = [w.reload('SIGHUP'), w.reload('SIGHUP'), w.reload('watch')]
  t.not(calls[0], calls[1], 'a call during a reload gets the follow-up, not the running one')
  t.equal(calls[1], calls[2], 'callers during a reload share one follow-up')
  const [a, b] = await Promise.all(calls)
  t.same([a!.result, b!.result, b!.reason], ['success', 'success', 'SIGHUP'], 'a queued SIGHUP is not downgraded')
  await sleep(100)
  t.equal(events.length - before, 2, 'three requests, two reloads')
})
