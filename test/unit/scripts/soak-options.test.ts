// `npm run soak`'s options: bad ones are refused with a message naming the option.
import t from 'tap'
import { soakOptions } from '../../../scripts/soak/run.ts'

t.test('defaults, --quick, --only and --seconds', async (t) => {
  t.same(soakOptions([]).scenarios.map((s) => s.name), ['policy-churn', 'bad-file', 'rotation', 'endpoint-restart', 'peer-kill', 'peer-blackhole', 'restart'])
  t.equal(soakOptions([]).seconds, 60)
  t.equal(soakOptions(['--quick']).seconds, 4)
  t.equal(soakOptions(['--quick', '--seconds', '9']).seconds, 9)
  t.same(soakOptions(['--only', 'bad-file']).scenarios.map((s) => s.name), ['bad-file'])
  t.throws(() => soakOptions(['--only', 'nope']), /--only: no scenario "nope"; there are policy-churn, bad-file, rotation, endpoint-restart, peer-kill, peer-blackhole, restart/)
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
