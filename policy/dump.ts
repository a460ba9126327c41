// The compiled snapshot as plain JSON for /config_dump. Maps become objects, sets arrays,
// regular expressions their source. Policy holds no secrets (keys live in certs/), so
// nothing needs redacting here.

export function toJSON(value: unknown): unknown {
  if (value instanceof Map) return Object.fromEntries([...value.entries()].map(([k, v]) => [String(k), toJSON(v)]))
  if (value instanceof Set) return [...value].map(toJSON)
  if (value instanceof RegExp) return value.source
  if (Array.isArray(value)) return value.map(toJSON)
  if (value !== null && typeof value === 'object') return Object.fromEntries(Object.entries(value).map(([k, v]) => [k, toJSON(v)]))
  return value
}
