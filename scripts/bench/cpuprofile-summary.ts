// Self time by function and by file from a V8 .cpuprofile (node --cpu-prof), for the
// benchmarks' write-ups. Self time of a node = its hitCount x the mean sample interval; with a
// window, its samples within it x their mean interval there.
// Usage: node scripts/bench/cpuprofile-summary.ts FILE.cpuprofile [TOP]
import { readFile } from 'node:fs/promises'

interface CallFrame { functionName: string; url: string; lineNumber: number }
interface ProfileNode { id: number; callFrame: CallFrame; hitCount?: number }
export interface CpuProfile { nodes: ProfileNode[]; startTime: number; endTime: number; samples?: number[]; timeDeltas?: number[] }
/**
 * A span of the profiled process's monotonic clock in µs (V8 stamps samples with it; on Linux
 * it is CLOCK_MONOTONIC, as `process.hrtime` in another process), e.g. one load of a session.
 */
export interface Window { readonly startUs: number; readonly endUs: number }

export interface SelfTime { name: string; ms: number; /** of the non-idle time */ share: number }
export interface ProfileSummary {
  wallMs: number
  intervalUs: number
  idleMs: number
  busyMs: number
  functions: SelfTime[]
  files: SelfTime[]
  /** By who owns the code: a node core module family, an npm package, a hostmesh directory, or a native entry. */
  owners: SelfTime[]
}

const ROOT = new URL('../../', import.meta.url).href

function where(url: string): string {
  if (url === '') return '(native)'
  return url.startsWith(ROOT) ? url.slice(ROOT.length) : url
}

function owner(functionName: string, url: string): string {
  if (url === '') return functionName
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/')
    return `npm ${parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]}`
  }
  if (url.startsWith(ROOT)) return `hostmesh ${url.slice(ROOT.length).split('/').slice(0, 2).join('/').replace(/\.ts$/, '')}`
  if (url.startsWith('node:')) {
    const first = url.slice(5).replace(/^internal\//, '').split('/')[0]!
    const family = first.replace(/^_/, '').replace(/_.*$/, '')
    return `node:${family === 'stream' ? 'streams' : family}`
  }
  return url
}

function top(m: Map<string, number>, busyMs: number, n: number): SelfTime[] {
  return [...m].sort((a, b) => b[1] - a[1]).slice(0, n).map(([name, ms]) => ({ name, ms: Math.round(ms * 10) / 10, share: Math.round((ms / busyMs) * 1000) / 1000 }))
}

/** Each node's samples within the window, by node id. */
function hitsIn(p: CpuProfile, w: Window): Map<number, number> {
  if (!p.samples || !p.timeDeltas || p.samples.length !== p.timeDeltas.length) throw new Error('the profile has no per-sample times to cut a window from')
  const hits = new Map<number, number>()
  let t = p.startTime
  for (let i = 0; i < p.samples.length; i++) {
    t += p.timeDeltas[i]!
    if (t >= w.startUs && t <= w.endUs) hits.set(p.samples[i]!, (hits.get(p.samples[i]!) ?? 0) + 1)
  }
  return hits
}

export function summarise(p: CpuProfile, n = 15, window?: Window): ProfileSummary {
  const inWindow = window ? hitsIn(p, window) : undefined
  const hitsOf = (x: ProfileNode): number => (inWindow ? inWindow.get(x.id) ?? 0 : x.hitCount ?? 0)
  const [from, to] = window ? [Math.max(window.startUs, p.startTime), Math.min(window.endUs, p.endTime)] : [p.startTime, p.endTime]
  if (to <= from) throw new Error(`the window ${window?.startUs}–${window?.endUs} µs is outside the profile (${p.startTime}–${p.endTime} µs)`)
  const hits = p.nodes.reduce((s, x) => s + hitsOf(x), 0)
  const intervalUs = hits > 0 ? (to - from) / hits : 0
  const byFunction = new Map<string, number>()
  const byFile = new Map<string, number>()
  const byOwner = new Map<string, number>()
  let idleMs = 0
  for (const node of p.nodes) {
    const ms = (hitsOf(node) * intervalUs) / 1000
    if (ms === 0) continue
    const { functionName, url, lineNumber } = node.callFrame
    if (functionName === '(idle)') { idleMs += ms; continue }
    const name = url === '' ? functionName : `${functionName || '(anonymous)'} ${where(url)}:${lineNumber + 1}`
    byFunction.set(name, (byFunction.get(name) ?? 0) + ms)
    const file = url === '' ? functionName : where(url)
    byFile.set(file, (byFile.get(file) ?? 0) + ms)
    const who = owner(functionName, url)
    byOwner.set(who, (byOwner.get(who) ?? 0) + ms)
  }
  const wallMs = (to - from) / 1000
  const busyMs = wallMs - idleMs
  return { wallMs: Math.round(wallMs), intervalUs: Math.round(intervalUs), idleMs: Math.round(idleMs), busyMs: Math.round(busyMs), functions: top(byFunction, busyMs, n), files: top(byFile, busyMs, n), owners: top(byOwner, busyMs, n) }
}

export async function summariseFile(file: string, n = 15, window?: Window): Promise<ProfileSummary> {
  return summarise(JSON.parse(await readFile(file, 'utf8')) as CpuProfile, n, window)
}

if (import.meta.main) {
  const [file, n] = process.argv.slice(2)
  if (!file) {
    process.stderr.write('usage: cpuprofile-summary.ts FILE.cpuprofile [TOP]\n')
    process.exit(2)
  }
  const s = await summariseFile(file, n ? Number(n) : 15)
  console.log(`wall ${s.wallMs} ms, busy ${s.busyMs} ms, idle ${s.idleMs} ms, sample interval ${s.intervalUs} µs\n`)
  for (const [title, rows] of [['function', s.functions], ['file', s.files], ['owner', s.owners]] as const) {
    console.log(`| ${title} | self ms | of busy |\n|---|---|---|`)
    for (const r of rows) console.log(`| ${r.name} | ${r.ms} | ${(r.share * 100).toFixed(1)}% |`)
    console.log('')
  }
}
