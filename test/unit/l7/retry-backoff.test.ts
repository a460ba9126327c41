import t from 'tap'
import { backoffMs } from '../../../daemon/l7/stages/retry.ts'

t.test('full jitter: uniform below base × 2^(n-1), capped at 10 × base', async (t) => {
  const base = 25
  for (const [n, bound] of [[1, 25], [2, 50], [3, 100], [4, 200], [5, 250], [9, 250]] as const) {
    const samples = Array.from({ length: 2000 }, () => backoffMs(base, n))
    const max = Math.max(...samples)
    const mean = samples.reduce((s, x) => s + x, 0) / samples.length
    t.ok(samples.every((x) => x >= 0 && x < bound), `try ${n}: every wait in [0, ${bound})`)
    t.ok(max > bound * 0.9, `try ${n}: the waits reach near the bound (${max.toFixed(1)})`)
    // Uniform: mean bound/2, standard error bound/sqrt(12 × 2000) ≈ 0.0065 × bound.
    t.ok(Math.abs(mean - bound / 2) < bound * 0.04, `try ${n}: mean ${mean.toFixed(1)} near ${bound / 2}`)
  }
})
