// Config and policy are validated once, then frozen all the way down (fastify's model):
// a component can hold a reference for as long as it likes and nothing can change under it.

export type DeepReadonly<T> = T extends (...args: never[]) => unknown
  ? T
  : T extends ReadonlyMap<infer K, infer V>
    ? ReadonlyMap<DeepReadonly<K>, DeepReadonly<V>>
    : T extends ReadonlySet<infer V>
      ? ReadonlySet<DeepReadonly<V>>
      : T extends object
        ? { readonly [P in keyof T]: DeepReadonly<T[P]> }
        : T

export function deepFreeze<T>(value: T): DeepReadonly<T> {
  const seen = new Set<object>()
  const visit = (v: unknown): void => {
    if (v === null || typeof v !== 'object' || seen.has(v)) return
    seen.add(v)
    // Map and Set contents are not protected by Object.freeze; snapshots use plain lookups
    // built before freezing, and nothing exposes a mutating method on them.
    if (v instanceof Map) for (const [k, val] of v) { visit(k); visit(val) }
    else if (v instanceof Set) for (const val of v) visit(val)
    else for (const key of Reflect.ownKeys(v)) visit((v as Record<PropertyKey, unknown>)[key])
    Object.freeze(v)
  }
  visit(value)
  return value as DeepReadonly<T>
}
