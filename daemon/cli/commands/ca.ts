// `hostmesh ca init` and `hostmesh ca node`: the operator's CA steps, run on an operator's
// machine (not on the hosts). Each prints which file goes to which host.
import { resolve } from 'node:path'
import { initRootCa, makeNodeCa, type CaResult } from '../../../certs/ca-ops.ts'
import { stringOption, type Command } from '../command.ts'
import { UsageError } from '../errors.ts'
import { EXIT } from '../exit-codes.ts'

const HOST_CERT_DIR = '/etc/hostmesh/certs'
const NODE_NAME = /^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/

export const caCommand: Command = {
  name: 'ca',
  summary: 'make the mesh root CA and node intermediates',
  help: `Usage: hostmesh ca init --dir DIR [--trust-domain TD] [--force]
       hostmesh ca node --ca DIR --node NAME --out DIR [--force]

  init   make the mesh root CA in DIR: ECDSA P-256, valid 10 years.
         Writes root-cert.pem, root-key.pem (0600) and bundle.pem (the trust bundle).
  node   make the intermediate CA of one host, signed by the root in --ca DIR:
         CA, pathLen 0, valid 1 year (never past the root), name constraints that permit
         only URIs in the trust domain, and spiffe://<td>/hostmesh/node/NAME as its URI SAN
         (peers check that a workload's certificate comes from the CA of the node that
         policy says runs it). Writes ca-cert.pem, ca-key.pem (0600) and bundle.pem to --out.

Options:
  --dir DIR            (init) where the root goes; keep root-key.pem offline
  --trust-domain TD    (init) SPIFFE trust domain (default cluster.local)
  --ca DIR             (node) a directory made by 'ca init'. If its bundle.pem holds
                       several roots (root rotation), every node gets all of them.
  --node NAME          (node) the host's node.name, as in its hostmesh.yaml
  --out DIR            (node) where the host's files go
  --force              overwrite existing files (they are refused otherwise)
  -h, --help           show this help

Exit codes: 0 done, 1 failed (e.g. a file exists without --force), 2 usage error.
`,
  options: { dir: { type: 'string' }, ca: { type: 'string' }, node: { type: 'string' }, out: { type: 'string' }, 'trust-domain': { type: 'string' }, force: { type: 'boolean' } },
  async run(args, io) {
    const [sub, ...extra] = args.positionals
    if (extra.length > 0) throw new UsageError(`unexpected argument "${extra[0]}"`)
    const force = args.values.force === true
    const need = (name: string): string => {
      const v = stringOption(args, name)
      if (!v) throw new UsageError(`ca ${sub} needs --${name}`)
      return resolve(v)
    }
    if (sub === 'init') {
      const trustDomain = stringOption(args, 'trust-domain') ?? 'cluster.local'
      if (!NODE_NAME.test(trustDomain)) throw new UsageError(`--trust-domain "${trustDomain}" is not a lowercase DNS name`)
      const r = await initRootCa({ dir: need('dir'), trustDomain, force })
      io.out(`Root CA for trust domain ${r.trustDomain}, valid until ${r.notAfter.toISOString()}:\n${describe(r, {
        'root-key.pem': 'SECRET: keep offline; only `hostmesh ca node` needs it',
        'root-cert.pem': 'the root certificate',
        'bundle.pem': `the trust bundle; 'ca node' copies it to every host (${HOST_CERT_DIR}/bundle.pem)`,
      })}Next: hostmesh ca node --ca ${need('dir')} --node <node name> --out <dir>, once per host.\n`)
      return EXIT.OK
    }
    if (sub === 'node') {
      const node = stringOption(args, 'node')
      if (!node || !NODE_NAME.test(node)) throw new UsageError(node ? `--node "${node}" is not a lowercase DNS name` : 'ca node needs --node')
      const r = await makeNodeCa({ caDir: need('ca'), node, outDir: need('out'), force })
      io.out(`Node CA for ${node} (spiffe://${r.trustDomain}/hostmesh/node/${node}), valid until ${r.notAfter.toISOString()}:\n${describe(r, {
        'ca-key.pem': `SECRET: to host ${node} only, as ${HOST_CERT_DIR}/ca-key.pem (0600, owned by the hostmesh user)`,
        'ca-cert.pem': `to host ${node}, as ${HOST_CERT_DIR}/ca-cert.pem`,
        'bundle.pem': `to every host, as ${HOST_CERT_DIR}/bundle.pem (the same file everywhere)`,
      })}`)
      return EXIT.OK
    }
    throw new UsageError(sub ? `unknown ca subcommand "${sub}"; expected init or node` : 'expected a subcommand: init or node')
  },
}

function describe(r: CaResult, what: Record<string, string>): string {
  return r.files.map((f) => `  ${f.path}  (${f.mode.toString(8).padStart(4, '0')})  ${what[f.path.split('/').pop()!] ?? ''}\n`).join('')
}
