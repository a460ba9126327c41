// `npm run soak`'s options: bad ones are refused with a message naming the option.
import t from 'tap'
import { soakOptions } from '../../../scripts/soak/run.ts'

t.test('defaults, --quick, --only and --seconds', async (t) => {
  const hostile = ['hbone-flood', 'hbone-tls-garbage', 'hbone-h2-abuse', 'plaintext-flood', 'plaintext-slowloris', 'plaintext-slow-read', 'plaintext-garbage', 'plaintext-smuggling', 'plaintext-h2-abuse',
    'outbound-flood', 'outbound-slowloris', 'outbound-slow-read', 'outbound-garbage', 'outbound-smuggling', 'outbound-h2-abuse', 'admin-flood', 'admin-slowloris', 'admin-slow-read', 'admin-garbage']
  t.same(soakOptions([]).scenarios.map((s) => s.name), ['policy-churn', 'bad-file', 'rotation', 'endpoint-restart', 'peer-kill', 'peer-blackhole', 'restart', ...hostile])
  t.same(soakOptions(['--only', 'hostile']).scenarios.map((s) => s.name), hostile, '--only takes a group')
  t.same(soakOptions(['--only', 'restart,admin-flood']).scenarios.map((s) => s.name), ['restart', 'admin-flood'])
  t.equal(soakOptions([]).seconds, 60)
  t.equal(soakOptions(['--quick']).seconds, 4)
  t.equal(soakOptions(['--quick', '--seconds', '9']).seconds, 9)
  t.same(soakOptions(['--only', 'bad-file']).scenarios.map((s) => s.name), ['bad-file'])
  t.throws(() => soakOptions(['--only', 'nope']), /--only: no scenario "nope"; there are policy-churn, bad-file, rotation, endpoint-restart, peer-kill, peer-blackhole, restart, hbone-flood, .*admin-garbage, and the group hostile/)
  t.throws(() => soakOptions(['--seconds', '0']), /--seconds takes a whole number from 1 to 86400, not "0"/)
  t.throws(() => soakOptions(['--minutes', '3']), /Unknown option '--minutes'/)
})

t.test('--long: the hour-long run alone', async (t) => {
  t.same(soakOptions(['--long']).scenarios.map((s) => s.name), ['long'])
  t.equal(soakOptions(['--long']).seconds, 3600)
  t.equal(soakOptions(['--long', '--seconds', '900']).seconds, 900)
  t.throws(() => soakOptions(['--long', '--quick']), /--long runs alone: not with --quick or --only/)
  t.throws(() => soakOptions(['--long', '--only', 'restart']), /--long runs alone/)
})
