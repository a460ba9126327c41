// Self time by function and by file from V8 .cpuprofiles (node --cpu-prof), for the
// benchmarks' write-ups. Self time of a node = its hitCount x the mean sample interval; with a
// window, its samples within it x their mean interval there. A daemon with worker threads
// writes one profile per thread: summarised together, their wall and idle times add up.
// Usage: node scripts/bench/cpuprofile-summary.ts FILE.cpuprofile... [--top N]
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
// The daemon as installed runs dist/ (built into a scratch package by scripts/bench/installed.ts):
// its files are named by their source path.
const DIST = /^file:\/\/.*\/dist\/((?:base|daemon|policy|certs|scripts)\/.*)\.js$/

/** This checkout's path of a profiled file: a source file, or the source of a dist/ file. */
function ours(url: string): string | undefined {
  if (url.startsWith(ROOT)) return url.slice(ROOT.length)
  const m = DIST.exec(url)
  return m ? `${m[1]}.ts` : undefined
}

function where(url: string): string {
  if (url === '') return '(native)'
  return ours(url) ?? url
}

function owner(functionName: string, url: string): string {
  if (url === '') return functionName
  const nm = url.lastIndexOf('/node_modules/')
  if (nm >= 0) {
    const parts = url.slice(nm + '/node_modules/'.length).split('/')
    return `npm ${parts[0]!.startsWith('@') ? `${parts[0]}/${parts[1]}` : parts[0]}`
  }
  const path = ours(url)
  if (path !== undefined) return `hostmesh ${path.split('/').slice(0, 2).join('/').replace(/\.ts$/, '')}`
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

/** One profile, or several (a process's threads) summed: wall and idle are the threads' sums. */
export function summarise(profiles: CpuProfile | readonly CpuProfile[], n = 15, window?: Window): ProfileSummary {
  const byFunction = new Map<string, number>()
  const byFile = new Map<string, number>()
  const byOwner = new Map<string, number>()
  let wallMs = 0
  let idleMs = 0
  let intervalUs = 0
  for (const p of Array.isArray(profiles) ? profiles as readonly CpuProfile[] : [profiles as CpuProfile]) {
    const one = addProfile(p, window, byFunction, byFile, byOwner)
    wallMs += one.wallMs
    idleMs += one.idleMs
    intervalUs = Math.max(intervalUs, one.intervalUs)
  }
  const busyMs = wallMs - idleMs
  return { wallMs: Math.round(wallMs), intervalUs: Math.round(intervalUs), idleMs: Math.round(idleMs), busyMs: Math.round(busyMs), functions: top(byFunction, busyMs, n), files: top(byFile, busyMs, n), owners: top(byOwner, busyMs, n) }
}

function addProfile(p: CpuProfile, window: Window | undefined, byFunction: Map<string, number>, byFile: Map<string, number>, byOwner: Map<string, number>): { wallMs: number; idleMs: number; intervalUs: number } {
  const inWindow = window ? hitsIn(p, window) : undefined
  const hitsOf = (x: ProfileNode): number => (inWindow ? inWindow.get(x.id) ?? 0 : x.hitCount ?? 0)
  const [from, to] = window ? [Math.max(window.startUs, p.startTime), Math.min(window.endUs, p.endTime)] : [p.startTime, p.endTime]
  if (to <= from) throw new Error(`the window ${window?.startUs}–${window?.endUs} µs is outside the profile (${p.startTime}–${p.endTime} µs)`)
  const hits = p.nodes.reduce((s, x) => s + hitsOf(x), 0)
  const intervalUs = hits > 0 ? (to - from) / hits : 0
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
  return { wallMs: (to - from) / 1000, idleMs, intervalUs }
}

/** The profiles in `files` (one process's threads), summarised together. */
export async function summariseFile(files: string | readonly string[], n = 15, window?: Window): Promise<ProfileSummary> {
  const list = typeof files === 'string' ? [files] : files
  return summarise(await Promise.all(list.map(async (f) => JSON.parse(await readFile(f, 'utf8')) as CpuProfile)), n, window)
}

if (import.meta.main) {
  const args = process.argv.slice(2)
  const at = args.indexOf('--top')
  const n = at >= 0 ? Number(args[at + 1]) : 15
  const files = args.filter((_, i) => at < 0 || (i !== at && i !== at + 1))
  if (files.length === 0) {
    process.stderr.write('usage: cpuprofile-summary.ts FILE.cpuprofile... [--top N]\n')
    process.exit(2)
  }
  const s = await summariseFile(files, n)
  console.log(`wall ${s.wallMs} ms, busy ${s.busyMs} ms, idle ${s.idleMs} ms, sample interval ${s.intervalUs} µs\n`)
  for (const [title, rows] of [['function', s.functions], ['file', s.files], ['owner', s.owners]] as const) {
    console.log(`| ${title} | self ms | of busy |\n|---|---|---|`)
    for (const r of rows) console.log(`| ${r.name} | ${r.ms} | ${(r.share * 100).toFixed(1)}% |`)
    console.log('')
  }
}
