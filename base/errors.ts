// Every error hostmesh raises on purpose is a HostmeshError with a stable `code`, so callers,
// tests and log queries match on the code, never on message text. Wrapped failures keep the
// original in `cause` (ES2022 error cause), so nothing is lost when an error crosses a layer.
// This module imports nothing: every folder's errors.ts builds on it without import cycles.

export type ErrorCode = `HOSTMESH_ERR_${string}`

export class HostmeshError extends Error {
  readonly code: ErrorCode

  constructor(code: ErrorCode, message: string, options?: { cause?: unknown }) {
    super(message, options)
    this.code = code
    this.name = new.target.name
  }
}

/** Walks the `cause` chain, outermost first. Bounded, in case a chain is ever circular. */
export function causeChain(err: unknown, max = 16): unknown[] {
  const chain: unknown[] = []
  let cur: unknown = err
  while (cur !== undefined && cur !== null && chain.length < max) {
    chain.push(cur)
    cur = cur instanceof Error ? cur.cause : undefined
  }
  return chain
}

export function isHostmeshError(err: unknown): err is HostmeshError {
  return err instanceof HostmeshError
}
