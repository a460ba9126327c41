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
  // Freeze before descending and skip what is frozen already: that marks visited objects
  // (shared and cyclic references are walked once) without a Set, which matters for a
  // snapshot of 10,000 services.
  const visit = (v: object): void => {
    if (Object.isFrozen(v)) return
    Object.freeze(v)
    // Map and Set contents are not protected by Object.freeze; snapshots expose them only
    // as ReadonlyMap / ReadonlySet.
    if (v instanceof Map) {
      for (const [k, val] of v) {
        if (typeof k === 'object' && k !== null) visit(k)
        if (typeof val === 'object' && val !== null) visit(val)
      }
    } else if (v instanceof Set) {
      for (const val of v) if (typeof val === 'object' && val !== null) visit(val)
    } else if (Array.isArray(v)) {
      for (const val of v) if (typeof val === 'object' && val !== null) visit(val)
    } else {
      const values = Object.values(v)
      for (const val of values) if (typeof val === 'object' && val !== null) visit(val)
    }
  }
  if (typeof value === 'object' && value !== null) visit(value)
  return value as DeepReadonly<T>
}
