// One demo step: what it measured, the lines the report prints for it, and what went wrong.
// A step that throws is a failed step with the error as its problem; the next steps still run.

export type StepName = 'setup' | 'mtls-call' | 'canary' | 'deny' | 'failover' | 'admin'

export interface StepOutcome<T> {
  readonly data: T
  readonly lines: readonly string[]
  /** Empty when the step behaved as expected. */
  readonly problems: readonly string[]
}

export interface StepReport {
  readonly name: StepName
  readonly title: string
  readonly ok: boolean
  readonly ms: number
  readonly lines: readonly string[]
  readonly problems: readonly string[]
}

export async function runStep<T>(name: StepName, title: string, fn: () => Promise<StepOutcome<T>>): Promise<{ report: StepReport; data: T | null }> {
  const started = Date.now()
  try {
    const out = await fn()
    return { report: { name, title, ok: out.problems.length === 0, ms: Date.now() - started, lines: out.lines, problems: out.problems }, data: out.data }
  } catch (err) {
    return { report: { name, title, ok: false, ms: Date.now() - started, lines: [], problems: [(err as Error).message] }, data: null }
  }
}

/** Collects the problems of a step: `check(ok, 'what should have happened, and what did')`. */
export function checker(): { check(ok: boolean, problem: string): void; readonly problems: string[] } {
  const problems: string[] = []
  return { problems, check: (ok, problem) => void (ok || problems.push(problem)) }
}
