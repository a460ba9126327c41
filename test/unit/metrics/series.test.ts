// Counters and histograms resolved once per series: what prom-client's Registry does with them
// (text, JSON, reset, aggregation across registries) is what it does with its own metrics.
import { AggregatorRegistry, Counter, Histogram, Registry } from 'prom-client'
import t from 'tap'
import { SeriesCounter, SeriesHistogram } from '../../../daemon/metrics/series.ts'

const L = { route: 'a', code: '200' }

t.test('the same exposition as prom-client\'s own Counter and Histogram', async (t) => {
  const ours = new Registry()
  const theirs = new Registry()
  const c = new SeriesCounter(ours, 'x_total', 'help x', 100)
  const h = new SeriesHistogram(ours, 'y_ms', 'help y', [1, 10, 100], 100)
  const pc = new Counter({ name: 'x_total', help: 'help x', labelNames: ['route', 'code'], registers: [theirs] })
  const ph = new Histogram({ name: 'y_ms', help: 'help y', labelNames: ['route', 'code'], buckets: [1, 10, 100], registers: [theirs] })
  for (const v of [0.5, 1, 7, 50, 5000]) {
    c.at('k', L).inc()
    h.at('k', L).observe(v)
    pc.inc(L)
    ph.observe(L, v)
  }
  c.at('k2', { route: 'b', code: '503' }).inc(3)
  pc.inc({ route: 'b', code: '503' }, 3)
  t.equal(await ours.metrics(), await theirs.metrics(), 'byte for byte')
  // prom-client's own values carry an empty `exemplar` field; nothing else differs.
  const plain = (ms: Awaited<ReturnType<Registry['getMetricsAsJSON']>>): unknown =>
    ms.map((m) => ({ ...m, values: m.values.map((v) => {
      const { labels, value, metricName } = v as typeof v & { metricName?: string }
      return { labels, value, ...(metricName ? { metricName } : {}) }
    }) }))
  t.same(plain(await ours.getMetricsAsJSON()), plain(await theirs.getMetricsAsJSON()), 'and as JSON')
})

t.test('one series per key, the same object every time; reset empties; the bound clears', async (t) => {
  const r = new Registry()
  const c = new SeriesCounter(r, 'z_total', 'z', 2)
  t.equal(c.at('a', L), c.at('a', L))
  c.at('a', L).inc()
  c.at('b', L).inc()
  t.equal((await c.get()).values.length, 2)
  c.at('c', L).inc()
  t.equal((await c.get()).values.length, 1, 'past the bound the series start again')
  r.resetMetrics()
  t.same((await c.get()).values, [])
  t.equal(r.getSingleMetric('z_total'), c as unknown, 'registered under its name')
})

t.test('registries of several workers aggregate (prom-client\'s AggregatorRegistry): counts summed', async (t) => {
  const workers = [new Registry(), new Registry()]
  workers.forEach((r, i) => {
    new SeriesCounter(r, 'w_total', 'w', 10).at('k', L).inc(i + 1)
    new SeriesHistogram(r, 'w_ms', 'w', [10], 10).at('k', L).observe(i * 20)
  })
  const merged = AggregatorRegistry.aggregate(await Promise.all(workers.map((r) => r.getMetricsAsJSON())))
  const text = await merged.metrics()
  t.match(text, /^w_total\{route="a",code="200"\} 3$/m)
  t.match(text, /^w_ms_bucket\{le="10",route="a",code="200"\} 1$/m)
  t.match(text, /^w_ms_count\{route="a",code="200"\} 2$/m)
})
