// `npm run soak [-- --quick] [--only a,b]` (issue #15): each scenario runs a bounded, steady load
// through the mesh (HTTP on the L7 path and TCP on the L4 path, from checkout on node-a to
// payments on node-b and node-c), first alone ("before"), then again while the scenario
// disturbs the mesh ("during"), and prints one row: requests and connections sent and failed,
// p99 during against before, the daemons' RSS before and after, and a verdict. Raw JSON goes to
// scripts/soak/results/, the table to RELIABILITY.md by hand, with the machine. Needs root.
//   --quick       a few seconds per scenario (CI runs this: test/e2e/serial/soak.test.ts)
//   --only a,b    only these scenarios (or groups: `hostile`, the attacks of scripts/soak/hostile.ts)
//   --seconds N   each scenario's disturbance (default 60; --quick 4)
//   --long        the hour-long run alone (scripts/soak/long.ts; default --seconds 3600): RSS,
//                 fds and per-endpoint state over time, as slopes. Not in CI.
import { parseArgs } from 'node:util'
import { withTestNet } from '../netns/hosts.ts'
import { machineLine, writeResults } from '../bench/results.ts'
import { sourceState } from '../bench/source-state.ts'
import { HOSTS, SoakMesh, type HttpLoad, type TcpLoad } from './mesh.ts'
import { long } from './long.ts'
import { GROUPS, SCENARIOS, type Check, type Scenario } from './scenarios.ts'

export interface SoakRow {
  readonly scenario: string
  readonly bar: string
  readonly seconds: number
  readonly did: string
  readonly before: { readonly http: HttpLoad; readonly tcp: TcpLoad }
  readonly during: { readonly http: HttpLoad; readonly tcp: TcpLoad }
  readonly rssBefore: Record<string, number>
  readonly rssAfter: Record<string, number>
  readonly checks: readonly Check[]
  readonly pass: boolean
}

export interface SoakOptions {
  readonly quick: boolean
  readonly seconds: number
  readonly scenarios: readonly Scenario[]
}

export function soakOptions(args: readonly string[]): SoakOptions {
  const { values } = parseArgs({ args: [...args], strict: true, allowPositionals: false, options: { quick: { type: 'boolean' }, only: { type: 'string' }, seconds: { type: 'string' }, long: { type: 'boolean' } } })
  const quick = values.quick === true
  if (values.long && (quick || values.only !== undefined)) throw new Error('--long runs alone: not with --quick or --only')
  const seconds = values.seconds === undefined ? (values.long ? 3600 : quick ? 4 : 60) : Number(values.seconds)
  if (!Number.isInteger(seconds) || seconds < 1 || seconds > 3600 * 24) throw new Error(`--seconds takes a whole number from 1 to 86400, not "${values.seconds}"`)
  if (values.long) return { quick, seconds, scenarios: [long] }
  const names = values.only?.split(',').map((s) => s.trim()).filter((s) => s !== '').flatMap((n) => GROUPS[n] ?? [n])
  for (const n of names ?? []) if (!SCENARIOS.some((s) => s.name === n)) throw new Error(`--only: no scenario "${n}"; there are ${SCENARIOS.map((s) => s.name).join(', ')}, and the group${Object.keys(GROUPS).length > 1 ? 's' : ''} ${Object.keys(GROUPS).join(', ')}`)
  const scenarios = names ? SCENARIOS.filter((s) => names.includes(s.name)) : SCENARIOS
  return { quick, seconds, scenarios }
}

const failedHttp = (l: HttpLoad): number => l.failed + l.non2xx
const failedTcp = (l: TcpLoad): number => l.refused + l.reset + l.timeout + l.short + l.other

/** One scenario: the loads alone, then the loads while it acts. */
async function runScenario(mesh: SoakMesh, s: Scenario, seconds: number, beforeSeconds: number): Promise<SoakRow> {
  await s.prepare?.(mesh)
  const [http0, tcp0] = await Promise.all([mesh.http(beforeSeconds), mesh.tcp(beforeSeconds)])
  const rssBefore = await mesh.rss()
  const answersBefore = await mesh.failedAnswers()
  // The loads outlast the disturbance by a second on each side, so its first and last acts land on traffic.
  const loads = Promise.all([mesh.http(seconds + 2), mesh.tcp(seconds + 2)])
  await new Promise((r) => setTimeout(r, 1000))
  const disturbance = await s.run(mesh, seconds)
  const [http, tcp] = await loads
  const rssAfter = await mesh.rss()
  // Which answers were not 200, as node-a's hostmesh counted them (a restarted node-a counts from zero).
  const answersAfter = await mesh.failedAnswers()
  const notOk = Object.entries(answersAfter).map(([k, v]) => [k, v - (answersBefore[k] ?? 0)] as const).filter(([, v]) => v > 0).map(([k, v]) => `${v} × ${k}`).join(', ')
  await s.cleanup?.(mesh)
  const success = s.httpSuccess ?? 1
  const succeeded = http.requests > 0 ? (http.requests - failedHttp(http)) / http.requests : 0
  const httpDetail = `${http.requests} sent, ${failedHttp(http)} failed (${http.failed} errors, ${http.non2xx} not 2xx${notOk ? `; node-a answered ${notOk}` : ''})`
  const checks: Check[] = [
    ...success === 0 ? [] : [success === 1
      ? { name: 'no HTTP request failed', ok: failedHttp(http) === 0 && http.requests > 0, detail: httpDetail }
      : { name: `at least ${success * 100}% of HTTP requests succeeded`, ok: succeeded >= success, detail: `${httpDetail}: ${(succeeded * 100).toFixed(3)}%` }],
    ...(s.tcpSuccess ?? 1) === 1 ? [{ name: 'no TCP connection failed', ok: failedTcp(tcp) === 0 && tcp.ok > 0, detail: `${tcp.ok + failedTcp(tcp)} opened, ${failedTcp(tcp)} failed ${JSON.stringify(tcp.errors.slice(0, 2))}` }] : [],
    ...s.loadChecks?.(http, tcp, { http: http0, tcp: tcp0, seconds: beforeSeconds }) ?? [],
    ...disturbance.checks,
  ]
  const marked = checks.map((c) => (s.unmet?.[c.name] ? { ...c, todo: s.unmet[c.name] } : c))
  return { scenario: s.name, bar: s.bar, seconds, did: disturbance.did, before: { http: http0, tcp: tcp0 }, during: { http, tcp }, rssBefore, rssAfter, checks: marked, pass: checks.every((c) => c.ok) }
}

const sum = (r: Record<string, number>): number => Object.values(r).reduce((a, b) => a + b, 0)

export function formatRow(r: SoakRow): string {
  return `| ${r.scenario} | ${r.during.http.requests} / ${failedHttp(r.during.http)} | ${r.during.tcp.ok + failedTcp(r.during.tcp)} / ${failedTcp(r.during.tcp)} | ${r.before.http.p99ms} → ${r.during.http.p99ms} | ${sum(r.rssBefore)} → ${sum(r.rssAfter)} | ${r.pass ? 'pass' : '**FAIL**'} |`
}

/**
 * Runs the scenarios. `record: false` (the CI test) writes no results file into the checkout;
 * `log` takes the printed lines (the test makes them TAP comments: a line starting "ok" on
 * stdout would read as a test point).
 */
export async function soak(args: readonly string[], { record = true, log = (line: string): void => console.log(line) } = {}): Promise<SoakRow[]> {
  const opts = soakOptions(args)
  if (process.getuid?.() !== 0) throw new Error('npm run soak needs root: it builds network namespaces and iptables rules')
  const beforeSeconds = opts.quick ? 2 : 10
  const rows: SoakRow[] = []
  await withTestNet({ hosts: [...HOSTS] }, async (net) => {
    const mesh = await SoakMesh.start(net, { httpRate: 200, httpConnections: 8, tcpConcurrency: 2, tcpPauseMs: 20 })
    // A warm-up, not measured: the daemons' first requests compile their code and fill their pools.
    await Promise.all([mesh.http(3), mesh.tcp(3)])
    for (const s of opts.scenarios) {
      const row = await runScenario(mesh, s, Math.max(opts.seconds, s.minSeconds ?? 0), beforeSeconds)
      rows.push(row)
      log(`${s.name}: ${row.pass ? 'pass' : 'FAIL'} — ${row.did}`)
      for (const c of row.checks) log(`  ${c.ok ? 'ok  ' : 'FAIL'} ${c.name}: ${c.detail}${c.todo && !c.ok ? ` (not met yet: ${c.todo})` : ''}`)
    }
  })
  log('\n| scenario | HTTP requests / failed | TCP connections / failed | HTTP p99 ms, before → during | RSS MiB, 3 daemons, before → after | verdict |')
  log('|---|---|---|---|---|---|')
  for (const r of rows) log(formatRow(r))
  if (!record) return rows
  const at = new Date().toISOString()
  const file = await writeResults('soak', { soak: true, at, source: await sourceState(), machine: machineLine(), options: { ...opts, scenarios: opts.scenarios.map((s) => s.name) }, rows }, at, new URL('./results/', import.meta.url))
  log(`\nmachine: ${machineLine()}\nraw: ${file}`)
  return rows
}

if (import.meta.main) {
  const rows = await soak(process.argv.slice(2)).catch((err: unknown) => {
    console.error(err instanceof Error ? err.message : err)
    process.exit(2)
  })
  process.exitCode = rows.every((r) => r.pass) ? 0 : 1
}
