// /ready is true only when every startup condition has been met and the daemon is not
// draining. Later stages add their own conditions (certificates issued, first policy loaded)
// by name, so /ready can say exactly what it is still waiting for.

export interface ReadinessStatus {
  readonly ready: boolean
  readonly draining: boolean
  readonly waitingFor: readonly string[]
}

export class Readiness {
  readonly #pending: Set<string>
  readonly #listeners: ((status: ReadinessStatus) => void)[] = []
  #draining = false

  constructor(conditions: readonly string[]) {
    this.#pending = new Set(conditions)
  }

  markReady(condition: string): void {
    if (this.#pending.delete(condition)) this.#changed()
  }

  /** A condition that held stops holding (an outbound listener could not be bound). */
  markNotReady(condition: string): void {
    if (this.#pending.has(condition)) return
    this.#pending.add(condition)
    this.#changed()
  }

  startDrain(): void {
    if (this.#draining) return
    this.#draining = true
    this.#changed()
  }

  /** Called on every change (a condition met, the drain started): systemd's READY=1 follows /ready. */
  onChange(listener: (status: ReadinessStatus) => void): void {
    this.#listeners.push(listener)
  }

  #changed(): void {
    const status = this.status()
    for (const l of this.#listeners) l(status)
  }

  get ready(): boolean {
    return this.#pending.size === 0 && !this.#draining
  }

  status(): ReadinessStatus {
    return { ready: this.ready, draining: this.#draining, waitingFor: [...this.#pending] }
  }
}
