// Per-service totals of Istio's TCP counters, and their recent rates, for /stats. Read from
// the registry, so they are the numbers /metrics exports; the data path is not touched. Rates
// compare the totals now with a sample from up to a minute ago (one sample every 5 s, taken
// off the data path by a timer).
import type { Counter, Registry } from 'prom-client'

export type Direction = 'outbound' | 'inbound'

export interface TcpTotals {
  opened: number
  closed: number
  /** Connections that carried no data: response_flags other than "-" (UF, NR, UAEX). */
  refused: number
  sent: number
  received: number
}

export interface ServiceRate {
  /** Seconds between the oldest sample in the window and now. */
  readonly windowSeconds: number
  readonly connectionsPerSecond: number
  readonly errorsPerSecond: number
  /** Refused / opened in the window, 0..1; null when nothing was opened. */
  readonly errorRate: number | null
}

export interface ServiceStats {
  /** `<name>.<namespace>`, or Istio's PassthroughCluster / BlackHoleCluster / unknown. */
  readonly service: string
  /** outbound: reported by this host as the source (reporter="source"); inbound: as the destination. */
  readonly direction: Direction
  readonly opened: number
  readonly closed: number
  readonly active: number
  readonly refused: number
  readonly bytesSent: number
  readonly bytesReceived: number
  /** null until a first sample exists. */
  readonly rate: ServiceRate | null
}

export const RATE_WINDOW_MS = 60_000
export const RATE_SAMPLE_MS = 5_000

const COUNTERS = {
  opened: 'istio_tcp_connections_opened_total',
  closed: 'istio_tcp_connections_closed_total',
  sent: 'istio_tcp_sent_bytes_total',
  received: 'istio_tcp_received_bytes_total',
} as const

interface Sample {
  readonly at: number
  readonly totals: ReadonlyMap<string, TcpTotals>
}

export class TcpRates {
  readonly #registry: () => Promise<Registry> | Registry
  readonly #now: () => number
  readonly #windowMs: number
  readonly #samples: Sample[] = []
  #timer: NodeJS.Timeout | undefined

  /** `registry`: the metrics to read, or how to get them at each read (merged with worker threads'). */
  constructor(registry: Registry | (() => Promise<Registry>), now: () => number = Date.now, windowMs = RATE_WINDOW_MS) {
    this.#registry = typeof registry === 'function' ? registry : () => registry
    this.#now = now
    this.#windowMs = windowMs
  }

  /** Takes a first sample now, then one every `everyMs`; the timer never holds the process. */
  start(everyMs = RATE_SAMPLE_MS): void {
    void this.sample()
    this.#timer = setInterval(() => void this.sample(), everyMs).unref()
  }

  stop(): void {
    clearInterval(this.#timer)
  }

  /** Records the totals now and forgets samples older than the window. */
  async sample(): Promise<void> {
    const totals = await readTcpTotals(await this.#registry())
    const at = this.#now()
    this.#samples.push({ at, totals })
    while (this.#samples.length > 1 && this.#samples[0]!.at < at - this.#windowMs) this.#samples.shift()
  }

  /** Totals per (direction, service), busiest first, with rates against the oldest sample in the window. */
  async services(): Promise<ServiceStats[]> {
    const totals = await readTcpTotals(await this.#registry())
    const now = this.#now()
    const base = this.#samples.find((s) => s.at >= now - this.#windowMs)
    return [...totals].map(([key, t]) => {
      const [direction, service] = splitKey(key)
      return {
        service, direction,
        opened: t.opened, closed: t.closed, active: t.opened - t.closed, refused: t.refused,
        bytesSent: t.sent, bytesReceived: t.received,
        rate: base && now > base.at ? rateOf(t, base.totals.get(key), (now - base.at) / 1000) : null,
      }
    }).sort((a, b) => b.opened - a.opened || (a.service < b.service ? -1 : 1))
  }
}

/** The Istio TCP counters summed per (direction, service) over every other label. */
export async function readTcpTotals(registry: Registry): Promise<Map<string, TcpTotals>> {
  const out = new Map<string, TcpTotals>()
  for (const [field, name] of Object.entries(COUNTERS) as [keyof typeof COUNTERS, string][]) {
    const counter = registry.getSingleMetric(name) as Counter | undefined
    if (!counter) continue
    for (const { value, labels } of (await counter.get()).values) {
      const key = `${labels.reporter === 'source' ? 'outbound' : 'inbound'}\t${String(labels.destination_service ?? 'unknown')}`
      let t = out.get(key)
      if (!t) out.set(key, (t = { opened: 0, closed: 0, refused: 0, sent: 0, received: 0 }))
      t[field] += value
      if (field === 'closed' && labels.response_flags !== '-') t.refused += value
    }
  }
  return out
}

function splitKey(key: string): [Direction, string] {
  const i = key.indexOf('\t')
  return [key.slice(0, i) as Direction, key.slice(i + 1)]
}

function rateOf(now: TcpTotals, then: TcpTotals | undefined, seconds: number): ServiceRate {
  const opened = now.opened - (then?.opened ?? 0)
  const errors = now.refused - (then?.refused ?? 0)
  return {
    windowSeconds: Math.round(seconds * 10) / 10,
    connectionsPerSecond: round(opened / seconds),
    errorsPerSecond: round(errors / seconds),
    errorRate: opened > 0 ? round(errors / opened) : null,
  }
}

function round(n: number): number {
  return Math.round(n * 1000) / 1000
}
