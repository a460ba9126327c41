// Command line of `npm run demo` (scripts/demo.ts), and its exit codes.
import { parseArgs } from 'node:util'

export const EXIT = { ok: 0, failed: 1, usage: 2, notRoot: 77 } as const

export const USAGE = `usage: npm run demo -- [--json] [--keep]
       node scripts/demo.ts [--json] [--keep]

Builds three hosts (network namespaces), runs the real \`hostmesh run\` on each with
policy/examples, and drives workloads through an mTLS call across hosts (checked on the wire
with tcpdump), the 90/10 TCPRoute canary, an authorization deny and a failover; then prints
what happened and removes everything it made. Needs root, ip, iptables, tcpdump, curl.

  --json   print the report as one JSON object (progress still goes to stderr)
  --keep   keep the hosts and daemons up after the report, so the admin commands it prints
           work; Ctrl-C removes everything and exits with the demo's result
  --help   this text

exit: 0 every step behaved as expected, 1 a step failed (the report says which) or the
demo could not run, 2 usage error, 77 not root, 130/143 interrupted before the report.
`

export interface DemoArgs {
  readonly json: boolean
  readonly keep: boolean
  readonly help: boolean
}

export function demoArgs(argv: readonly string[]): DemoArgs | { readonly error: string } {
  try {
    const { values } = parseArgs({ args: [...argv], options: { json: { type: 'boolean' }, keep: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } }, strict: true, allowPositionals: false })
    return { json: values.json ?? false, keep: values.keep ?? false, help: values.help ?? false }
  } catch (err) {
    return { error: (err as Error).message }
  }
}
