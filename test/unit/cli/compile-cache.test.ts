// `hostmesh run` under systemd's CacheDirectory= keeps V8's compile cache there (daemon/cli.ts),
// so a restart loads its code faster; other commands, and a run without it, write nothing.
import { execFile } from 'node:child_process'
import { existsSync, mkdtempSync, readdirSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'

const CLI = new URL('../../../daemon/cli.ts', import.meta.url).pathname

function cli(args: string[], env: NodeJS.ProcessEnv): Promise<number> {
  return new Promise((resolve) => {
    execFile(process.execPath, [CLI, ...args], { env: { ...process.env, NODE_OPTIONS: '', NODE_COMPILE_CACHE: '', ...env }, timeout: 30_000 }, (err) => {
      resolve(err ? (typeof err.code === 'number' ? err.code : -1) : 0)
    })
  })
}

t.test('run writes its compiled code under CACHE_DIRECTORY; validate does not', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-cache-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  t.equal(await cli(['validate', '--policy-dir', join(dir, 'none')], { CACHE_DIRECTORY: dir }) === 0, false, 'validate of a missing dir fails (it ran)')
  t.notOk(existsSync(join(dir, 'compile-cache')), 'and left no cache')
  t.equal(await cli(['run', '--config', join(dir, 'missing.yaml')], { CACHE_DIRECTORY: dir }), 78, 'run of a missing config exits 78 (it ran)')
  t.ok(readdirSync(join(dir, 'compile-cache'), { recursive: true }).length > 10, 'and left the modules it compiled in the cache')
})
