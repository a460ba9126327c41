// The --long run's verdict rests on least-squares slopes of its samples.
import t from 'tap'
import { slope } from '../../../scripts/soak/long.ts'

t.test('slope: exact on a line, zero when flat or too few points', async (t) => {
  t.equal(slope([[0, 1], [1, 3], [2, 5]]), 2)
  t.equal(slope([[0, 7], [1, 7], [5, 7]]), 0)
  t.equal(slope([[3, 9]]), 0)
  t.equal(slope([[2, 1], [2, 5]]), 0, 'all at one x: no slope')
  t.ok(Math.abs(slope([[0, 0], [1, 1.1], [2, 1.9], [3, 3]]) - 0.98) < 1e-9, 'noisy: the fitted line (4.9 / 5)')
})
