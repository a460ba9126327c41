// Every name the harness creates carries `hmt-<pid>-<run>`: unique per run, so parallel test
// files never collide, and traceable to its owner, so a later run can tell a crashed run's
// leftovers (owner pid gone) from a live run's resources (owner pid alive).
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'

export const PREFIX = 'hmt'

export function newRunId(pid: number = process.pid): string {
  return `${PREFIX}-${pid}-${randomBytes(3).toString('hex')}`
}

/** Test users: `hmt<pid>x<hex>u<n>`, within useradd's 32 characters and its character set. */
export function userName(runId: string, n: number): string {
  const m = /^hmt-(\d+)-([0-9a-f]{6})$/.exec(runId)
  if (!m) throw new Error(`not a test run id: ${runId}`)
  return `${PREFIX}${m[1]}x${m[2]}u${n}`
}

const NETNS = /^hmt-(\d+)-[0-9a-f]{6}-/
const USER = /^hmt(\d+)x[0-9a-f]{6}u\d+$/

/** The pid of the run that owns `name`, or undefined if the name is not ours. */
export function ownerPid(name: string): number | undefined {
  const m = NETNS.exec(name) ?? USER.exec(name)
  return m ? Number(m[1]) : undefined
}

/** True while `pid` runs. A zombie (dead, not yet reaped by its new parent) counts as gone. */
export function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0)
  } catch (err) {
    return (err as NodeJS.ErrnoException).code === 'EPERM'
  }
  try {
    const stat = readFileSync(`/proc/${pid}/stat`, 'utf8')
    return stat.slice(stat.lastIndexOf(')') + 2, stat.lastIndexOf(')') + 3) !== 'Z'
  } catch {
    return false
  }
}
