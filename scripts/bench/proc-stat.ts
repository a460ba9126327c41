// What a benchmark reads of a process from /proc: CPU time so far, RSS, thread count, and the
// machine's load average. /proc/<pid>/stat of a thread-group leader sums all its threads, so
// a multi-threaded proxy (HAProxy's nbthread, node's libuv and V8 threads) is counted whole.
import { execFile } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { promisify } from 'node:util'

let clockTicks: number | undefined

async function ticksPerSecond(): Promise<number> {
  clockTicks ??= Number((await promisify(execFile)('getconf', ['CLK_TCK'])).stdout.trim()) || 100
  return clockTicks
}

/** A process's CPU time so far (utime + stime) and the kernel's part of it (stime), in seconds. */
export async function cpuSeconds(pid: number): Promise<{ all: number; system: number }> {
  const hz = await ticksPerSecond()
  const stat = await readFile(`/proc/${pid}/stat`, 'utf8')
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ') // f[0] is field 3 (state)
  return { all: (Number(f[11]) + Number(f[12])) / hz, system: Number(f[12]) / hz }
}

async function status(pid: number, field: string): Promise<number> {
  const m = new RegExp(`^${field}:\\s+(\\d+)`, 'm').exec(await readFile(`/proc/${pid}/status`, 'utf8'))
  return m ? Number(m[1]) : NaN
}

/** Resident set size in MiB (VmRSS). */
export async function rssMiB(pid: number): Promise<number> {
  return (await status(pid, 'VmRSS')) / 1024
}

export function threads(pid: number): Promise<number> {
  return status(pid, 'Threads')
}

/** The 1, 5 and 15 minute load averages, as /proc/loadavg gives them. */
export async function loadavg(): Promise<string> {
  return (await readFile('/proc/loadavg', 'utf8')).split(' ').slice(0, 3).join(' ')
}

/** The argv of a process, to check a pid is the program it should be. */
export async function cmdline(pid: number): Promise<string[]> {
  return (await readFile(`/proc/${pid}/cmdline`, 'utf8')).split('\0').filter((s) => s !== '')
}
