// `workers: auto` is the CPUs this process may use; tcp_migrate_req is set when it can be, and a
// read-only /proc/sys (ProtectKernelTunables=yes) is a warning with the fix, not a failure.
import { mkdtempSync, readFileSync, writeFileSync } from 'node:fs'
import { availableParallelism, tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { enableRequestMigration, workerCount } from '../../../daemon/workers/count.ts'

t.test('auto is one per usable CPU; a number is itself', async (t) => {
  t.equal(workerCount('auto'), availableParallelism())
  t.equal(workerCount(3), 3)
})

t.test('tcp_migrate_req: set when 0, left when 1, a warning when it cannot be written', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-sysctl-'))
  const warnings: Array<{ obj: Record<string, unknown>; msg: string }> = []
  const log = { warn: (obj: Record<string, unknown>, msg: string) => warnings.push({ obj, msg }) } as unknown as Parameters<typeof enableRequestMigration>[0]
  const file = join(dir, 'tcp_migrate_req')
  writeFileSync(file, '0\n')
  t.equal(await enableRequestMigration(log, file), true)
  t.equal(readFileSync(file, 'utf8'), '1\n', 'written')
  t.equal(await enableRequestMigration(log, file), true, 'already 1')
  t.equal(await enableRequestMigration(log, join(dir, 'missing', 'tcp_migrate_req')), false, 'no such sysctl (an old kernel)')
  t.match(warnings[0], { obj: { sysctl: 'net.ipv4.tcp_migrate_req' }, msg: /set it in \/etc\/sysctl\.d/ })
})
