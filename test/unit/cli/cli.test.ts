import t from 'tap'
import { COMMANDS, dispatch } from '../../../daemon/cli/dispatch.ts'
import { hostmesh } from '../../helpers/cli.ts'

t.test('hostmesh --help lists every command and exits 0', async (t) => {
  const res = hostmesh(['--help'])
  t.equal(res.status, 0)
  for (const name of ['run', 'validate', 'iptables', 'ca', 'status', 'version']) t.match(res.stdout, new RegExp(`^  ${name} +\\S`, 'm'))
  t.equal(res.stderr, '')
})

t.test('no arguments prints usage and exits 0', async (t) => {
  const res = hostmesh([])
  t.equal(res.status, 0)
  t.match(res.stdout, /^Usage: hostmesh <command>/)
})

t.test('hostmesh version prints the package and runtime versions', async (t) => {
  const pkg = (await import('../../../package.json', { with: { type: 'json' } })).default as { version: string }
  const res = hostmesh(['version'])
  t.equal(res.status, 0)
  t.match(res.stdout, new RegExp(`^hostmesh ${pkg.version.replaceAll('.', '\\.')}\\n`))
  t.match(res.stdout, `node ${process.version} ${process.platform}/${process.arch}`)
  t.match(res.stdout, /origdst addon: (built|unavailable \(.+\))/)
  const json = JSON.parse(hostmesh(['version', '--json']).stdout) as Record<string, string>
  t.equal(json.hostmesh, pkg.version)
  t.equal(json.node, process.version)
})

t.test('an unknown subcommand prints usage on stderr and exits 2', async (t) => {
  const res = hostmesh(['frobnicate'])
  t.equal(res.status, 2)
  t.match(res.stderr, 'hostmesh: unknown command "frobnicate"')
  t.match(res.stderr, /Usage: hostmesh <command>/)
  t.equal(res.stdout, '')
})

t.test('every subcommand has --help', async (t) => {
  for (const c of COMMANDS) {
    const out: string[] = []
    const code = await dispatch([c.name, '--help'], { out: (s) => out.push(s), err: (s) => out.push(s), env: {} })
    t.equal(code, 0, `${c.name} --help exits 0`)
    t.match(out.join(''), new RegExp(`^Usage: hostmesh ${c.name}`), `${c.name} --help shows its usage`)
  }
  t.match(hostmesh(['help', 'run']).stdout, /^Usage: hostmesh run/, '`hostmesh help run` works too')
})

t.test('a bad option is a usage error (exit 2) that shows the command help', async (t) => {
  const res = hostmesh(['run', '--nope'])
  t.equal(res.status, 2)
  t.match(res.stderr, /hostmesh run: Unknown option '--nope'/)
  t.match(res.stderr, /Usage: hostmesh run/)
})

t.test('an unexpected error is reported with exit 1', async (t) => {
  const err: string[] = []
  const boom = { name: 'boom', summary: '', help: '', options: {}, run: async () => { throw new Error('kaput') } }
  const code = await dispatch(['boom'], { out: () => {}, err: (s) => err.push(s), env: {} }, [...COMMANDS, boom])
  t.equal(code, 1)
  t.match(err.join(''), /hostmesh boom: unexpected error: Error: kaput/)
})

t.test('the runtime check refuses an old Node with a clear message', async (t) => {
  const { spawnSync } = await import('node:child_process')
  const { CLI } = await import('../../helpers/cli.ts')
  // Simulate Node 20 by overriding process.versions before the CLI module runs.
  const res = spawnSync(process.execPath, ['--import', 'data:text/javascript,Object.defineProperty(process.versions,"node",{value:"20.20.2"})', CLI, 'version'], { encoding: 'utf8' })
  t.equal(res.status, 1)
  t.match(res.stderr, /hostmesh: needs Node\.js 24 or newer/)
  t.equal(res.stdout, '')
})
