// `hostmesh validate [DIR]`: the daemon's own reload pipeline, offline, like `nginx -t`.
// Compiles once per Node the policy declares, so per-node results (outbound port
// assignment) are checked too.
import { existsSync } from 'node:fs'
import { loadNodeConfig, resolveConfigPath } from '../../config/load.ts'
import { DEFAULT_CONFIG_PATH, DEFAULT_PORTS, fixedPorts } from '../../config/schema.ts'
import { formatProblem, type SourceProblem } from '../../../policy/errors.ts'
import { indexDocs } from '../../../policy/index-docs.ts'
import { ParseCache, parsePolicyFiles, readPolicyDir } from '../../../policy/load.ts'
import { buildSnapshot } from '../../../policy/pipeline.ts'
import type { Snapshot } from '../../../policy/snapshot.ts'
import { stringOption, type Command } from '../command.ts'

export const validateCommand: Command = {
  name: 'validate',
  summary: 'check policy files offline, like nginx -t',
  help: `Usage: hostmesh validate [DIR] [--json] [--config FILE] [--trust-domain TD]

Runs the daemon's policy pipeline (parse, schema, cross-references, compile) over DIR
without touching a running daemon. DIR defaults to the node config's policyDir.
Prints every problem as file:line:col: message.

Options:
  --json               one JSON object: ok, dir, hash, files, counts, problems
  -c, --config FILE    node config, for policyDir, trustDomain and ports
                       (default: $HOSTMESH_CONFIG, else ${DEFAULT_CONFIG_PATH} if it exists)
  --trust-domain TD    trust domain when there is no node config (default cluster.local)
  -h, --help           show this help

Exit codes: 0 valid, 1 invalid (or DIR missing), 2 usage error, 78 invalid node config.
`,
  options: { json: { type: 'boolean' }, config: { type: 'string', short: 'c' }, 'trust-domain': { type: 'string' } },
  async run(args, io) {
    const configPath = resolveConfigPath(stringOption(args, 'config'), io.env)
    const explicitConfig = stringOption(args, 'config') !== undefined || Boolean(io.env.HOSTMESH_CONFIG)
    const config = explicitConfig || existsSync(configPath) ? await loadNodeConfig(configPath) : undefined
    const dir = args.positionals[0] ?? config?.policyDir ?? '/etc/hostmesh/policy.d'
    const trustDomain = stringOption(args, 'trust-domain') ?? config?.trustDomain ?? 'cluster.local'
    const policyDir = await readPolicyDir(dir)

    let problems: readonly SourceProblem[] = []
    let snapshot: Snapshot | undefined
    if (policyDir.missing) {
      problems = [{ file: dir, line: 1, col: 1, key: '', message: 'the policy dir does not exist' }]
    } else {
      // One compile per declared Node (each host's view), or one node-less compile. The
      // files are parsed once: every compile after the first takes them from the cache.
      const cache = new ParseCache()
      const nodes = [...indexDocs(parsePolicyFiles(policyDir.files, undefined, cache).docs).index.nodes.keys()]
      const ports = config?.ports ?? DEFAULT_PORTS
      for (const localNode of nodes.length ? nodes : [undefined]) {
        const res = buildSnapshot(policyDir, {
          generation: 1, trustDomain, cache,
          ...(localNode ? { localNode } : {}),
          outboundBase: ports.outboundBase, reservedPorts: fixedPorts(ports),
        })
        if (!res.ok) { problems = res.problems; break }
        snapshot ??= res.snapshot
      }
    }
    const ok = problems.length === 0
    if (args.values.json) {
      io.out(`${JSON.stringify({ ok, dir, hash: policyDir.hash, files: snapshot?.files ?? policyDir.files.map((f) => ({ path: f.path, sha256: f.sha256 })), counts: snapshot?.counts ?? null, problems }, null, 2)}\n`)
    } else if (ok) {
      const counts = Object.entries(snapshot!.counts).filter(([, n]) => n > 0).map(([k, n]) => `${n} ${k}`).join(', ')
      io.out(`${dir}: OK: ${snapshot!.files.length} file(s), ${counts || 'no documents'}; hash ${snapshot!.hash.slice(0, 12)}\n`)
    } else {
      for (const p of problems) io.err(`${formatProblem(p)}\n`)
      io.err(`${dir}: ${problems.length} problem${problems.length === 1 ? '' : 's'}; the daemon would keep its last good policy\n`)
    }
    return ok ? 0 : 1
  },
}
