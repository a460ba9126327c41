// Checkout anywhere (issue #15, item 5): the tools run from a checkout that no other uid can
// read, as one under /root (mode 0700 on Debian) is, whatever this checkout's own place is.
// A copy of the checkout goes into a 0700 directory (node_modules linked, not copied), and from
// there, as root: the demo, a soak scenario and an HTTP bench. Each runs workloads as other
// uids (checkout 2001, payments 2002, the bench's clients and servers), which must get
// readable copies of what they run (scripts/netns/readable.ts), and each must finish with its
// own verdict. Serial: each builds namespace hosts and loads the machine.
import { spawn } from 'node:child_process'
import { chmodSync, cpSync, mkdtempSync, rmSync, statSync, symlinkSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, relative } from 'node:path'
import t from 'tap'
import { e2eSkip } from '../../helpers/e2e.ts'

const ROOT = new URL('../../../', import.meta.url).pathname
const NODE = process.execPath

/** Runs `args` with node in `cwd`, without tap's hooks; resolves with its exit code and output. */
function run(cwd: string, args: readonly string[], timeoutMs: number): Promise<{ code: number | null; stdout: string; stderr: string }> {
  return new Promise((resolve) => {
    const env = { ...process.env }
    delete env.NODE_OPTIONS
    const p = spawn(NODE, args, { cwd, env })
    let stdout = ''
    let stderr = ''
    p.stdout.on('data', (c: Buffer) => { if (stdout.length < 4_000_000) stdout += c.toString() })
    p.stderr.on('data', (c: Buffer) => { if (stderr.length < 1_000_000) stderr += c.toString() })
    const timer = setTimeout(() => p.kill('SIGINT'), timeoutMs)
    p.on('close', (code) => { clearTimeout(timer); resolve({ code, stdout, stderr }) })
  })
}

t.test('the demo, the soak and a bench run from a checkout other uids cannot read', { skip: e2eSkip() }, async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-private-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  chmodSync(dir, 0o700)
  const copy = join(dir, 'checkout')
  cpSync(ROOT, copy, { recursive: true, filter: (src) => !/^(node_modules|\.git)(\/|$)/.test(relative(ROOT, src)) })
  symlinkSync(join(ROOT, 'node_modules'), join(copy, 'node_modules'))
  t.equal(statSync(dir).mode & 0o777, 0o700, 'the copy sits in a directory only root can enter')

  await t.test('npm run demo', async (t) => {
    const r = await run(copy, ['scripts/demo.ts', '--json'], 180_000)
    t.equal(r.code, 0, `exit 0: ${r.stderr.slice(-1500)}`)
    const report = JSON.parse(r.stdout.slice(r.stdout.indexOf('{'))) as { ok: boolean; failedSteps: string[]; steps: unknown[] }
    t.same(report.failedSteps, [], 'every step measured as expected')
    t.ok(report.ok)
    t.match(JSON.stringify(report.steps), /run from readable copies in the temp dir: their uids cannot read this checkout/, 'its workloads ran from readable copies')
  })

  await t.test('npm run soak', async (t) => {
    const r = await run(copy, ['scripts/soak/run.ts', '--only', 'bad-file', '--quick'], 300_000)
    t.equal(r.code, 0, `exit 0, the scenario passed: ${r.stdout.slice(-1500)} ${r.stderr.slice(-1500)}`)
    t.match(r.stdout, /\| bad-file \| \d+ \/ 0 \| \d+ \/ 0 \|.*\| pass \|/, 'its row: requests and connections sent, none failed, pass')
  })

  await t.test('npm run bench', async (t) => {
    const r = await run(copy, ['scripts/bench/run.ts', 'http-mesh', '--only', 'mesh', '--rounds', '1', '--seconds', '1'], 300_000)
    t.equal(r.code, 0, `exit 0: ${r.stderr.slice(-1500)}`)
    t.match(r.stdout, /\| path \| req\/s/, 'it printed its table')
    t.notMatch(r.stdout + r.stderr, /EACCES|permission denied/i, 'no workload was refused a file')
  })
})
