// readableBy(): a path another uid can open, for files in a checkout only root can enter.
import { execFileSync } from 'node:child_process'
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { othersCanRead, readableArgv, readableBy } from '../../../scripts/netns/readable.ts'

t.test('a file others can read is used as it is; one behind a private directory gets a readable mirror', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-readable-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  chmodSync(dir, 0o755)
  const open = join(dir, 'open.ts')
  writeFileSync(open, 'open', { mode: 0o644 })
  t.ok(othersCanRead(open))
  t.equal(readableBy(open), open, 'no mirror needed')
  const hidden = join(dir, 'private')
  mkdirSync(hidden, { mode: 0o700 })
  const file = join(hidden, 'tool.ts')
  writeFileSync(file, 'console.log("hi")\n', { mode: 0o644 })
  t.notOk(othersCanRead(file), 'behind a 0700 directory')
  const mirror = readableBy(file)
  t.not(mirror, file)
  t.ok(othersCanRead(mirror), 'the mirror is readable by others')
  t.equal(readFileSync(mirror, 'utf8'), readFileSync(file, 'utf8'), 'with the same content')
  t.equal(readableBy(file), mirror, 'made once, then reused')
  writeFileSync(file, 'console.log("changed")\n')
  t.equal(readFileSync(readableBy(file), 'utf8'), 'console.log("changed")\n', 'a changed file gets a fresh mirror')
  t.same(readableArgv(['node', file, '-e', '/no/such/file', hidden]), ['node', readableBy(file), '-e', '/no/such/file', hidden], 'only existing files are mapped')
  if (process.getuid?.() === 0) {
    t.throws(() => execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', file], { stdio: 'pipe', cwd: '/' }), 'nobody cannot read the original')
    t.equal(execFileSync('setpriv', ['--reuid=65534', '--regid=65534', '--clear-groups', 'cat', readableBy(file)], { cwd: '/' }).toString(), 'console.log("changed")\n', 'but can read the mirror')
  }
})
