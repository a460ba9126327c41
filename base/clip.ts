// clip(): a value a peer controls (a header, an :authority, a path, a payload), made safe to
// put in a log line. A hostile peer otherwise chooses how big each line is (4,000-byte
// headers were seen, at thousands of lines a second).
//
//   clip('a'.repeat(4000))       → 128 times 'a', then '…(+3872 chars)'
//   clip(['text/html', 'x'], 8)  → 'text/htm…(+4 chars)'  (arrays, as HTTP/2 headers may be, are joined with ", ")
//   clip(bytes)                  → the UTF-8 text of the first 128 bytes, then '…(+N bytes)'
//   clip(404)                    → '404'
//   clip(undefined)              → undefined, so pino leaves the field out
//
// The result has at most `max` characters (UTF-16 code units, never half a surrogate pair) of
// the value, then the marker when something was cut. Only the kept part is ever copied: a
// large Buffer is not decoded, a large array is not joined. clip() never throws: a value
// that cannot be turned into a string gives '[unprintable]'. pino JSON-escapes what is
// left, so control characters cannot forge a line.

/** Characters of a peer's value kept in a log line, unless a caller says otherwise. */
export const CLIP_MAX = 128

/** What a peer's value can be on the data path. */
export type Clippable = string | Buffer | readonly string[] | number | bigint | boolean | null | undefined

export function clip(value: undefined, max?: number): undefined
export function clip(value: Exclude<Clippable, undefined>, max?: number): string
export function clip(value: Clippable, max?: number): string | undefined
export function clip(value: Clippable, max: number = CLIP_MAX): string | undefined {
  if (value === undefined) return undefined
  try {
    const limit = Number.isNaN(max) ? CLIP_MAX : Math.max(0, Math.floor(max))
    if (typeof value === 'string') return clipString(value, value.length, limit)
    if (Buffer.isBuffer(value)) return clipBuffer(value, limit)
    if (Array.isArray(value)) return clipArray(value as readonly unknown[], limit)
    const text = String(value)
    return clipString(text, text.length, limit)
  } catch {
    return '[unprintable]'
  }
}

/** text is the start of a value of `total` characters. */
function clipString(text: string, total: number, max: number): string {
  if (total <= max) return text
  let end = max
  // Never end on the first half of a surrogate pair: the line would hold an invalid character.
  if (end > 0 && isHighSurrogate(text.charCodeAt(end - 1))) end--
  return `${text.slice(0, end)}…(+${total - end} chars)`
}

function clipBuffer(buf: Buffer, max: number): string {
  if (buf.length <= max) return buf.toString('utf8')
  // Each byte decodes to at most one UTF-16 code unit (a 4-byte sequence to two), so the
  // text of `max` bytes has at most `max` characters; a sequence cut at the end becomes U+FFFD.
  return `${buf.subarray(0, max).toString('utf8')}…(+${buf.length - max} bytes)`
}

function clipArray(items: readonly unknown[], max: number): string {
  const SEP = ', '
  let head = ''
  let total = 0
  for (let i = 0; i < items.length; i++) {
    const item = String(items[i])
    const part = i === 0 ? item : SEP + item
    // Only the first max + 1 characters are ever copied; the rest is counted.
    if (head.length <= max) head += part.length > max + 1 ? part.slice(0, max + 1) : part
    total += part.length
  }
  return clipString(head, total, max)
}

function isHighSurrogate(code: number): boolean {
  return code >= 0xd800 && code <= 0xdbff
}
