// Linkerd's retry budget, per destination service: over the last `ttl`, retries may add at
// most `percent` of the requests, plus `minRetriesPerSecond` × ttl at any rate, so a failing
// service sees at most (1 + percent/100) × the offered load plus that floor, however many
// attempts the routes allow. Requests and retries are counted in ten slots of ttl/10 each (a
// sliding window, as tower's budget), so an old burst stops counting in steps, not all at once.
// With worker threads each thread keeps the budgets of the requests it carries, and gets its
// share of the floor: the threads' budgets add up to the host's, percent × every request plus
// one floor (docs/workers.md).
import type { DestinationSettings } from '../../policy/snapshot.ts'

const SLOTS = 10

type BudgetSettings = DestinationSettings['retryBudget']

export class RetryBudget {
  readonly settings: BudgetSettings
  readonly #slotMs: number
  readonly #requests = new Float64Array(SLOTS)
  readonly #retries = new Float64Array(SLOTS)
  /** The slot number (time / slotMs) the arrays' current slot holds. */
  #at = -1
  readonly #now: () => number
  readonly #floorShare: number

  /** `floorShare`: this thread's part of minRetriesPerSecond (1 / workers). */
  constructor(settings: BudgetSettings, now: () => number = () => performance.now(), floorShare = 1) {
    this.settings = settings
    this.#floorShare = floorShare
    this.#slotMs = Math.max(1, settings.ttlMs / SLOTS)
    this.#now = now
  }

  /** A request to the service (first tries only). */
  deposit(): void {
    this.#requests[this.#advance()]! += 1
  }

  /** Takes one retry from the budget; false when it is spent. */
  withdraw(): boolean {
    const i = this.#advance()
    if (this.#remaining() < 1) return false
    this.#retries[i]! += 1
    return true
  }

  /** Retries the budget would allow now (for /clusters). */
  remaining(): number {
    this.#advance()
    return Math.max(0, Math.floor(this.#remaining()))
  }

  #remaining(): number {
    let requests = 0
    let retries = 0
    for (let i = 0; i < SLOTS; i++) {
      requests += this.#requests[i]!
      retries += this.#retries[i]!
    }
    const { percent, minRetriesPerSecond, ttlMs } = this.settings
    return (requests * percent) / 100 + (minRetriesPerSecond * ttlMs * this.#floorShare) / 1000 - retries
  }

  /** Clears the slots that fell out of the window since the last call; the current slot's index. */
  #advance(): number {
    const slot = Math.floor(this.#now() / this.#slotMs)
    if (this.#at < 0 || slot - this.#at >= SLOTS) {
      this.#requests.fill(0)
      this.#retries.fill(0)
    } else {
      for (let s = this.#at + 1; s <= slot; s++) {
        this.#requests[s % SLOTS] = 0
        this.#retries[s % SLOTS] = 0
      }
    }
    if (slot > this.#at) this.#at = slot
    return this.#at % SLOTS
  }
}

/** One budget per destination service; a changed DestinationPolicy starts a new one. */
export class RetryBudgets {
  readonly #budgets = new Map<string, RetryBudget>()
  readonly #now: () => number
  readonly #floorShare: number

  constructor(now: () => number = () => performance.now(), floorShare = 1) {
    this.#now = now
    this.#floorShare = floorShare
  }

  for(service: string, settings: BudgetSettings): RetryBudget {
    let b = this.#budgets.get(service)
    // A reload compiles new settings objects: only a changed value starts a new budget.
    if (!b || !same(b.settings, settings)) {
      b = new RetryBudget(settings, this.#now, this.#floorShare)
      this.#budgets.set(service, b)
    }
    return b
  }

  /** For /clusters: retries left now, or null when the service has had no request yet. */
  remaining(service: string): number | null {
    return this.#budgets.get(service)?.remaining() ?? null
  }

  /** After a snapshot swap: forgets the services it no longer has. */
  retain(services: ReadonlySet<string>): void {
    for (const k of this.#budgets.keys()) if (!services.has(k)) this.#budgets.delete(k)
  }
}

function same(a: BudgetSettings, b: BudgetSettings): boolean {
  return a === b || (a.percent === b.percent && a.minRetriesPerSecond === b.minRetriesPerSecond && a.ttlMs === b.ttlMs)
}
