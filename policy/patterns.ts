// Istio's string patterns ("exact", "prefix*", "*suffix", "*"), compiled once with the
// snapshot and matched per connection or request. Runtime code imports these from here, so
// it never pulls in the compiler.
import type { PatternSet } from './snapshot.ts'

export function patternSet(patterns: readonly string[], normalize: (s: string) => string = (s) => s): PatternSet {
  const exact = new Set<string>()
  const prefixes: string[] = []
  const suffixes: string[] = []
  let any = false
  for (const raw of patterns) {
    const p = normalize(raw)
    if (p === '*') any = true
    else if (p.endsWith('*')) prefixes.push(p.slice(0, -1))
    else if (p.startsWith('*')) suffixes.push(p.slice(1))
    else exact.add(p)
  }
  return { any, exact, prefixes, suffixes }
}

export function matchesPattern(set: PatternSet, value: string): boolean {
  return set.any || set.exact.has(value) || set.prefixes.some((p) => value.startsWith(p)) || set.suffixes.some((s) => value.endsWith(s))
}

/** Principals are compared without the scheme: "<td>/ns/<ns>/sa/<sa>", as Istio writes them. */
export function principalOf(identity: string): string {
  return identity.startsWith('spiffe://') ? identity.slice('spiffe://'.length) : identity
}
