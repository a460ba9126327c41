// `hostmesh iptables print|apply|remove`: the capture rules this node's config and policy
// give, computed exactly as the daemon computes them (same pipeline, same outbound port
// assignment as a daemon starting now). The running daemon syncs them itself; these are for
// inspection, for setting up before the first start, and for uninstall.
import { readFileSync } from 'node:fs'
import { loadNodeConfig, resolveConfigPath } from '../../config/load.ts'
import { DEFAULT_CONFIG_PATH, type NodeConfig } from '../../config/schema.ts'
import { nodeCompileOptions } from '../../run/policy-reload.ts'
import { applyCapture, capturedPorts, removeCapture } from '../../intercept/iptables.ts'
import { captureInput, describeRules, uncapturable } from '../../intercept/iptables-rules.ts'
import { formatProblem } from '../../../policy/errors.ts'
import { loadPolicy } from '../../../policy/pipeline.ts'
import { stringOption, type Command } from '../command.ts'
import { adminUrlOf, getAdminJson } from '../admin-client.ts'
import { UsageError } from '../errors.ts'
import { EXIT } from '../exit-codes.ts'

export const DAEMON_USER = 'hostmesh'

export const iptablesCommand: Command = {
  name: 'iptables',
  summary: 'print, apply or remove the capture rules',
  help: `Usage: hostmesh iptables print|apply|remove [--config FILE] [--daemon-uid UID]

  print    show the iptables-restore input for this node's HOSTMESH_* chains (IPv4 and IPv6):
           the capture in nat, the owner guard in filter
  apply    apply them: one atomic commit per family and table, idempotent (applying twice
           changes nothing)
  remove   remove every hostmesh jump and chain, IPv4 and IPv6

The rules follow the node config and the policy in its policyDir, as a daemon starting now
would compute them; a running daemon keeps them in sync by itself.

Options:
  -c, --config FILE    node config (default: $HOSTMESH_CONFIG, else ${DEFAULT_CONFIG_PATH})
  --daemon-uid UID     the uid hostmesh runs as, never captured (default: the "${DAEMON_USER}"
                       system user if it exists, else the current uid)
  -h, --help           show this help

Exit codes: 0 done, 1 failed (invalid policy, an iptables error), 2 usage error, 78 invalid node config.
`,
  options: { config: { type: 'string', short: 'c' }, 'daemon-uid': { type: 'string' } },
  async run(args, io) {
    const [action, ...extra] = args.positionals
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`)
    if (action !== 'print' && action !== 'apply' && action !== 'remove') throw new UsageError(action ? `unknown action "${action}"; expected print, apply or remove` : 'expected an action: print, apply or remove')
    if (action === 'remove') {
      const n = await removeCapture()
      io.out(`removed the HOSTMESH_OUTPUT, HOSTMESH_PREROUTING and HOSTMESH_GUARD chains and ${n} jump${n === 1 ? '' : 's'} (IPv4 and IPv6)\n`)
      return EXIT.OK
    }
    const uidText = stringOption(args, 'daemon-uid')
    if (uidText !== undefined && !/^\d+$/.test(uidText)) throw new UsageError(`--daemon-uid "${uidText}" is not a uid`)
    const config = await loadNodeConfig(resolveConfigPath(stringOption(args, 'config'), io.env))
    const restoredPorts = await portsInForce(config)
    const res = await loadPolicy(config.policyDir, { generation: 1, ...nodeCompileOptions(config), restoredPorts })
    if (!res.ok) {
      for (const p of res.problems) io.err(`${formatProblem(p)}\n`)
      io.err(`hostmesh iptables: the policy in ${config.policyDir} is invalid; no rules ${action === 'apply' ? 'applied' : 'printed'}\n`)
      return EXIT.FAILURE
    }
    const input = captureInput(config.ports, res.snapshot, uidText !== undefined ? Number(uidText) : (systemUid(DAEMON_USER) ?? process.getuid?.() ?? 0))
    for (const l of uncapturable(input)) {
      io.err(`hostmesh iptables: warning: workload ${l.workload.key} has uid ${input.daemonUid}, the daemon's own uid; its traffic is never captured\n`)
    }
    if (action === 'print') {
      io.out(describeRules(input))
      return EXIT.OK
    }
    await applyCapture(input)
    io.out(`applied the capture rules for ${input.localWorkloads.length} local workload${input.localWorkloads.length === 1 ? '' : 's'} of ${config.node.name} (IPv4 and IPv6); the daemon's uid ${input.daemonUid} is not captured\n`)
    return EXIT.OK
  },
}

/** A user's uid from /etc/passwd, without a native lookup (NSS users are not seen: pass --daemon-uid). */
export function systemUid(name: string, passwd = '/etc/passwd'): number | undefined {
  let text: string
  try {
    text = readFileSync(passwd, 'utf8')
  } catch {
    return undefined
  }
  const line = text.split('\n').find((l) => l.startsWith(`${name}:`))
  const uid = line?.split(':')[2]
  return uid !== undefined && /^\d+$/.test(uid) ? Number(uid) : undefined
}

/**
 * The outbound ports in force, which existing workloads keep: the running daemon's own (it
 * listens on them, and assigned them from its history), else those the live rules name.
 */
async function portsInForce(config: NodeConfig): Promise<Map<string, number>> {
  try {
    const { body } = await getAdminJson<{ config?: { node?: { name?: string } }; policy?: { snapshot?: { localWorkloads?: { workload: { key: string }; outboundPort: number }[] } | null } }>(adminUrlOf(config), '/config_dump', [200], 1000)
    const local = body.policy?.snapshot?.localWorkloads
    if (body.config?.node?.name === config.node.name && Array.isArray(local)) return new Map(local.map((l) => [l.workload.key, l.outboundPort]))
  } catch { /* no daemon running here: the rules say it */ }
  return capturedPorts().catch(() => new Map<string, number>())
}
