// `hostmesh status`: what the daemon on this host is doing, from its admin port (/ready,
// /stats, /certs, /config_dump). Reads only; the daemon's state is never changed.
import { existsSync } from 'node:fs'
import { loadNodeConfig, resolveConfigPath } from '../../config/load.ts'
import { DEFAULT_CONFIG_PATH } from '../../config/schema.ts'
import { adminUrlOf, DEFAULT_ADMIN_URL, getAdminJson } from '../admin-client.ts'
import { stringOption, type CliIO, type ParsedArgs, type Command } from '../command.ts'
import { UsageError } from '../errors.ts'
import { EXIT } from '../exit-codes.ts'
import { renderStatus, type StatusData } from '../status-report.ts'

const DEFAULT_TOP = 5

export const statusCommand: Command = {
  name: 'status',
  summary: 'summarise a running daemon from its admin port',
  help: `Usage: hostmesh status [--admin URL | --config FILE] [--json] [--top N]

Prints what the daemon on this host is doing: ready or what it waits for, the policy in
force (generation, files, the last reload and its problems), identities and their expiry,
listeners with their open connections, and the busiest services by connection rate and
by error rate over the last minute. Reads /ready, /stats, /certs and /config_dump.

Options:
  --admin URL          the daemon's admin port (default: from the node config if there is
                       one, else ${DEFAULT_ADMIN_URL})
  -c, --config FILE    node config to take admin.address and ports.admin from
                       (default: $HOSTMESH_CONFIG, else ${DEFAULT_CONFIG_PATH} if it exists)
  --json               one JSON object: admin, ready, stats, certs, policy
  --top N              services per top list (default ${DEFAULT_TOP})
  -h, --help           show this help

Exit codes: 0 the daemon answered (ready or not: the output says which), 1 the admin port
did not answer, 2 usage error, 78 invalid node config.
`,
  options: { admin: { type: 'string' }, config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, top: { type: 'string' } },
  async run(args, io) {
    if (args.positionals.length > 0) throw new UsageError(`unexpected argument "${args.positionals[0]}"`)
    const top = topOption(args)
    const base = await adminUrl(args, io)
    const [ready, stats, certs, dump] = await Promise.all([
      getAdminJson<StatusData['ready']>(base, '/ready', [200, 503]),
      getAdminJson<StatusData['stats']>(base, '/stats'),
      getAdminJson<StatusData['certs']>(base, '/certs'),
      getAdminJson<{ policy: StatusData['policy'] & { snapshot?: unknown } }>(base, '/config_dump'),
    ])
    // The compiled snapshot can be large and is for /config_dump readers, not a summary.
    const { snapshot: _compiled, ...policy } = dump.body.policy
    const data: StatusData = { admin: base.origin, ready: ready.body, stats: stats.body, certs: certs.body, policy }
    io.out(args.values.json ? `${JSON.stringify(data, null, 2)}\n` : renderStatus(data, { top, now: Date.now() }))
    return EXIT.OK
  },
}

function topOption(args: ParsedArgs): number {
  const text = stringOption(args, 'top')
  if (text === undefined) return DEFAULT_TOP
  if (!/^[1-9]\d{0,3}$/.test(text)) throw new UsageError(`--top "${text}" is not a whole number from 1 to 9999`)
  return Number(text)
}

/** --admin wins; else the node config's admin address and port, when there is a config; else the default. */
async function adminUrl(args: ParsedArgs, io: CliIO): Promise<URL> {
  const flag = stringOption(args, 'admin')
  if (flag !== undefined) {
    let url: URL | undefined
    try {
      url = new URL(flag)
    } catch { /* answered below */ }
    if (url?.protocol !== 'http:') throw new UsageError(`--admin "${flag}" is not an http:// URL (e.g. ${DEFAULT_ADMIN_URL})`)
    return url
  }
  const path = resolveConfigPath(stringOption(args, 'config'), io.env)
  const explicit = stringOption(args, 'config') !== undefined || Boolean(io.env.HOSTMESH_CONFIG)
  if (!explicit && !existsSync(path)) return new URL(DEFAULT_ADMIN_URL)
  return adminUrlOf(await loadNodeConfig(path))
}
