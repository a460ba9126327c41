// Applying and removing the capture rules (iptables-rules.ts) with the real tools. Apply is
// atomic per family and table (one iptables-restore commit replaces the content of our nat
// chains, one our filter chain) and idempotent (the jumps from the built-in chains are added
// only if -C does not find them). Remove deletes the jumps, then our chains. IPv4 first, then
// IPv6, as DESIGN.md says.
import { spawn } from 'node:child_process'
import { captureRules, CHAIN_OUTPUT, CHAIN_PREROUTING, CHAINS, JUMPS, outboundRedirects, type CaptureInput, type Family, type Jump, type Table } from './iptables-rules.ts'
import { IptablesError } from './errors.ts'

const TOOLS: Record<Family, { restore: string; iptables: string }> = {
  4: { restore: 'iptables-restore', iptables: 'iptables' },
  6: { restore: 'ip6tables-restore', iptables: 'ip6tables' },
}
const FAMILIES: readonly Family[] = [4, 6]
// Wait for the xtables lock rather than fail when another tool holds it.
const WAIT = ['-w', '5']

interface Result { code: number; stdout: string; stderr: string }

function run(cmd: string, args: readonly string[], input?: string): Promise<Result> {
  return new Promise((resolve, reject) => {
    const child = spawn(cmd, args, { stdio: [input === undefined ? 'ignore' : 'pipe', 'pipe', 'pipe'] })
    let stderr = ''
    let stdout = ''
    child.stdout?.on('data', (d: Buffer) => { stdout += d.toString() })
    child.stderr?.on('data', (d: Buffer) => { stderr += d.toString() })
    child.on('error', (err) => reject(new IptablesError(`${cmd} ${args.join(' ')}`, (err as NodeJS.ErrnoException).code === 'ENOENT' ? `${cmd} is not installed (Debian: apt-get install iptables)` : err.message, { cause: err })))
    child.on('close', (code) => resolve({ code: code ?? 1, stdout, stderr }))
    if (input !== undefined) {
      // A tool that exits early (bad input) closes its stdin; its exit code tells the story.
      child.stdin!.on('error', () => undefined)
      child.stdin!.end(input)
    }
  })
}

async function must(cmd: string, args: readonly string[], input?: string): Promise<void> {
  const r = await run(cmd, args, input)
  if (r.code !== 0) throw new IptablesError(`${cmd} ${args.join(' ')}`, r.stderr)
}

const hasJump = async (family: Family, j: Jump): Promise<boolean> => (await run(TOOLS[family].iptables, [...WAIT, '-t', j.table, '-C', j.chain, ...j.rule])).code === 0

/** Whether a jump that must come first is the first rule of its chain (another ACCEPT before it would skip it). */
async function isFirst(family: Family, j: Jump): Promise<boolean> {
  const r = await run(TOOLS[family].iptables, [...WAIT, '-t', j.table, '-S', j.chain])
  const first = r.stdout.split('\n').find((l) => l.startsWith(`-A ${j.chain} `))
  return r.code === 0 && first !== undefined && first.trimEnd().endsWith(` -j ${j.rule.at(-1)}`)
}

/** Deletes every copy of a jump (a copy added by hand, or by an old version, too; bounded). */
async function deleteJump(family: Family, j: Jump): Promise<number> {
  let n = 0
  for (let i = 0; i < 32 && (await hasJump(family, j)); i++, n++) await must(TOOLS[family].iptables, [...WAIT, '-t', j.table, '-D', j.chain, ...j.rule])
  return n
}

/** Replaces the content of our chains with the rules for `input`, and makes sure the jumps exist (the guard's first in its chain). */
export async function applyCapture(input: CaptureInput): Promise<void> {
  for (const family of FAMILIES) {
    const t = TOOLS[family]
    await must(t.restore, [...WAIT, '--noflush'], captureRules(input, family))
    for (const j of JUMPS) {
      if (j.first) {
        if (await isFirst(family, j)) continue
        // Moved down by a rule inserted since, or absent: put back first.
        await deleteJump(family, j)
        await must(t.iptables, [...WAIT, '-t', j.table, '-I', j.chain, '1', ...j.rule])
      } else if (!(await hasJump(family, j))) await must(t.iptables, [...WAIT, '-t', j.table, '-A', j.chain, ...j.rule])
    }
  }
}

/**
 * Workload key → the outbound port its live rule redirects to, from our chains as they are
 * now (both families). Empty when there are none. A restart outside systemd, and
 * `hostmesh iptables apply` next to a running daemon, start from these, so the ports stay
 * what the rules (and the running listeners) already say.
 */
export async function capturedPorts(): Promise<Map<string, number>> {
  // Read-only listings, run together: this is on the daemon's start path.
  const listings = await Promise.all(FAMILIES.flatMap((family) => [CHAIN_OUTPUT, CHAIN_PREROUTING].map((chain) => listChain(family, 'nat', chain))))
  const ports = new Map<string, number>()
  for (const r of listings) if (r.code === 0) for (const [key, port] of outboundRedirects(r.stdout)) ports.set(key, port)
  return ports
}

/**
 * True when both families still have our jumps (the guard's still first), and our chains hold as many rules as `input`
 * gives them (nothing deleted or flushed them). A count, not the text: iptables prints rules
 * in its own normal form (`-m tcp` added, and so on).
 */
export async function captureInPlace(input: CaptureInput): Promise<boolean> {
  for (const family of FAMILIES) {
    for (const j of JUMPS) if (!(await (j.first ? isFirst(family, j) : hasJump(family, j)))) return false
    const want = captureRules(input, family).split('\n')
    for (const { table, chain } of CHAINS) {
      const listed = await listChain(family, table, chain)
      const count = (lines: readonly string[]): number => lines.filter((l) => l.startsWith(`-A ${chain} `)).length
      if (listed.code !== 0 || count(listed.stdout.split('\n')) !== count(want)) return false
    }
  }
  return true
}

/** `iptables -S` of one of our chains (exit code non-zero when it does not exist). */
function listChain(family: Family, table: Table, chain: string): Promise<Result> {
  return run(TOOLS[family].iptables, [...WAIT, '-t', table, '-S', chain])
}

/** Removes every hostmesh rule and chain. Returns how many jumps were deleted; missing pieces are fine. */
export async function removeCapture(): Promise<number> {
  let removed = 0
  for (const family of FAMILIES) {
    const t = TOOLS[family]
    // The capture first, the guard last: no moment has a redirect without its guard.
    for (const j of [...JUMPS].reverse()) removed += await deleteJump(family, j)
    for (const { table, chain } of [...CHAINS].reverse()) {
      if ((await run(t.iptables, [...WAIT, '-t', table, '-n', '-L', chain])).code !== 0) continue
      await must(t.iptables, [...WAIT, '-t', table, '-F', chain])
      await must(t.iptables, [...WAIT, '-t', table, '-X', chain])
    }
  }
  return removed
}
