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
  #draining = false

  constructor(conditions: readonly string[]) {
    this.#pending = new Set(conditions)
  }

  markReady(condition: string): void {
    this.#pending.delete(condition)
  }

  startDrain(): void {
    this.#draining = true
  }

  get ready(): boolean {
    return this.#pending.size === 0 && !this.#draining
  }

  status(): ReadinessStatus {
    return { ready: this.ready, draining: this.#draining, waitingFor: [...this.#pending] }
  }
}
