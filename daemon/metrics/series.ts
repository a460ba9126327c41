// Counters and histograms for the per-request path, registered in a prom-client Registry like
// any of its metrics (the same /metrics text, getSingleMetric().get(), resetMetrics(), and
// aggregation across registries) but cheaper to update. prom-client checks and hashes every
// label on every inc() and observe(), even through a child from labels(): for the 14 Istio
// labels that was 7–10% of a daemon's CPU at L7 (BENCHMARKS.md, "peer"). Here a series is
// resolved once, by the caller's own key, and an update is an array write.
import type { Registry } from 'prom-client'

type Labels = Readonly<Record<string, string>>

interface MetricValue {
  readonly labels: Record<string, string | number>
  readonly value: number
  readonly metricName?: string
}

/** What prom-client's Registry reads from a metric. */
interface MetricData {
  readonly name: string
  readonly help: string
  readonly type: 'counter' | 'histogram'
  readonly values: MetricValue[]
  readonly aggregator: 'sum'
}

abstract class Family<S> {
  readonly name: string
  readonly help: string
  readonly aggregator = 'sum' as const
  protected readonly series = new Map<string, { readonly labels: Labels; readonly s: S }>()
  readonly #max: number

  constructor(registry: Registry, name: string, help: string, maxSeries: number) {
    this.name = name
    this.help = help
    this.#max = maxSeries
    registry.registerMetric(this as unknown as Parameters<Registry['registerMetric']>[0])
  }

  /** The series for `labels`, found by the caller's `key` for them (one lookup, no hashing of labels); the same object every time. */
  protected of(key: string, labels: Labels, make: () => S): S {
    let e = this.series.get(key)
    if (!e) {
      // A bound for safety: label values come from names the snapshot knows.
      if (this.series.size >= this.#max) this.series.clear()
      e = { labels: { ...labels }, s: make() }
      this.series.set(key, e)
    }
    return e.s
  }

  reset(): void {
    this.series.clear()
  }

  abstract get(): Promise<MetricData>
}

export interface CounterSeries {
  inc(n?: number): void
}

class CounterState implements CounterSeries {
  value = 0
  inc(n = 1): void {
    this.value += n
  }
}

export class SeriesCounter extends Family<CounterState> {
  readonly type = 'counter' as const

  at(key: string, labels: Labels): CounterSeries {
    return this.of(key, labels, () => new CounterState())
  }

  async get(): Promise<MetricData> {
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values: [...this.series.values()].map((e) => ({ labels: { ...e.labels }, value: e.s.value })) }
  }
}

export interface HistogramSeries {
  observe(v: number): void
}

class HistogramState implements HistogramSeries {
  /** Per bucket (not cumulative), and one more for values above the last bound. */
  readonly counts: Float64Array
  readonly bounds: readonly number[]
  sum = 0
  count = 0

  constructor(bounds: readonly number[]) {
    this.bounds = bounds
    this.counts = new Float64Array(bounds.length + 1)
  }

  observe(v: number): void {
    const bounds = this.bounds
    let i = 0
    while (i < bounds.length && v > bounds[i]!) i++
    this.counts[i]! += 1
    this.sum += v
    this.count++
  }
}

export class SeriesHistogram extends Family<HistogramState> {
  readonly type = 'histogram' as const
  readonly #bounds: readonly number[]

  constructor(registry: Registry, name: string, help: string, buckets: readonly number[], maxSeries: number) {
    super(registry, name, help, maxSeries)
    this.#bounds = [...buckets].sort((a, b) => a - b)
  }

  at(key: string, labels: Labels): HistogramSeries {
    return this.of(key, labels, () => new HistogramState(this.#bounds))
  }

  async get(): Promise<MetricData> {
    const values: MetricValue[] = []
    for (const { labels, s } of this.series.values()) {
      let cumulative = 0
      for (let i = 0; i < this.#bounds.length; i++) {
        cumulative += s.counts[i]!
        values.push({ labels: { le: this.#bounds[i]!, ...labels }, value: cumulative, metricName: `${this.name}_bucket` })
      }
      values.push({ labels: { le: '+Inf', ...labels }, value: s.count, metricName: `${this.name}_bucket` })
      values.push({ labels: { ...labels }, value: s.sum, metricName: `${this.name}_sum` })
      values.push({ labels: { ...labels }, value: s.count, metricName: `${this.name}_count` })
    }
    return { name: this.name, help: this.help, type: this.type, aggregator: this.aggregator, values }
  }
}
