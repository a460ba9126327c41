// Files → YAML documents that remember where every value came from, so every later stage
// (schema, cross-references) can report `file:line:col`. Shared by the node config loader
// and the policy loader: one parser, one set of limits, one error format.
import { open } from 'node:fs/promises'
import { isMap, isPair, isScalar, isSeq, LineCounter, parseAllDocuments, type Document, type Node } from 'yaml'
import { SourceReadError, type SourceProblem } from './errors.ts'

export interface SourceLimits {
  /** Larger files are refused before parsing. */
  readonly maxBytes: number
  /** Bounds alias expansion, so a "billion laughs" file fails fast instead of eating memory. */
  readonly maxAliasCount: number
}

export const DEFAULT_LIMITS: SourceLimits = Object.freeze({ maxBytes: 1024 * 1024, maxAliasCount: 100 })

export interface SourceDocument {
  readonly file: string
  /** 0-based position of the document in a multi-document file. */
  readonly index: number
  /** The plain JS value (aliases expanded), or undefined when the document did not parse. */
  readonly value: unknown
  readonly doc: Document.Parsed
  readonly lines: LineCounter
}

export interface ParsedSource {
  readonly docs: readonly SourceDocument[]
  readonly problems: readonly SourceProblem[]
}

export interface Position {
  readonly line: number
  readonly col: number
}

/** Reads a whole text file, refusing anything larger than the limit without reading it. */
export async function readSource(file: string, limits: SourceLimits = DEFAULT_LIMITS): Promise<string> {
  let handle
  try {
    handle = await open(file, 'r')
  } catch (err) {
    throw new SourceReadError(file, `cannot open: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err })
  }
  try {
    const { size } = await handle.stat()
    if (size > limits.maxBytes) {
      throw new SourceReadError(file, `file is ${size} bytes, larger than the limit of ${limits.maxBytes} bytes`)
    }
    // Read one byte past the size stat gave: if that byte exists the file grew meanwhile, so
    // read it whole and check the limit again. Sized to the file, not to the limit: a reload
    // reads every policy file, and zeroing 1 MiB per file made reloads of many files slow.
    const buf = Buffer.allocUnsafe(size + 1)
    const { bytesRead } = await handle.read(buf, 0, buf.length, 0)
    if (bytesRead <= size) return buf.subarray(0, bytesRead).toString('utf8')
    const all = await handle.readFile()
    if (all.length > limits.maxBytes) throw new SourceReadError(file, `file is larger than the limit of ${limits.maxBytes} bytes`)
    return all.toString('utf8')
  } finally {
    await handle.close()
  }
}

/** Parses every document of a YAML text. Never throws: syntax problems are returned. */
export function parseSource(file: string, text: string, limits: SourceLimits = DEFAULT_LIMITS): ParsedSource {
  const lines = new LineCounter()
  const problems: SourceProblem[] = []
  const docs: SourceDocument[] = []
  // `uniqueKeys` makes a repeated key an error: YAML's last-one-wins would silently drop config.
  const parsed = parseAllDocuments(text, { lineCounter: lines, uniqueKeys: true, prettyErrors: false })
  const list = Array.isArray(parsed) ? parsed : []
  list.forEach((doc, index) => {
    if (doc.errors.length > 0) {
      for (const e of doc.errors) {
        const at = lines.linePos(e.pos[0])
        problems.push({ file, line: at.line, col: at.col, key: '', message: `YAML syntax: ${firstLine(e.message)}` })
      }
      docs.push({ file, index, value: undefined, doc, lines })
      return
    }
    try {
      docs.push({ file, index, value: doc.toJS({ maxAliasCount: limits.maxAliasCount }), doc, lines })
    } catch (err) {
      const at = lines.linePos(doc.range[0])
      problems.push({ file, line: at.line, col: at.col, key: '', message: `YAML aliases: ${firstLine(String((err as Error).message))} (the limit is ${limits.maxAliasCount} alias expansions)` })
      docs.push({ file, index, value: undefined, doc, lines })
    }
  })
  return { docs, problems }
}

/**
 * Where the value (or, with `which: 'key'`, the key) at `path` is written. When the path does
 * not exist (a missing required key) this is the deepest enclosing node that does, which is
 * where the user has to add it.
 */
export function positionOf(src: SourceDocument, path: readonly PropertyKey[], which: 'key' | 'value' = 'value'): Position {
  let node: unknown = src.doc.contents
  let at = offsetOf(node) ?? src.doc.range[0]
  for (let i = 0; i < path.length; i++) {
    const seg = path[i]
    const last = i === path.length - 1
    if (isMap(node)) {
      const pair = node.items.find((p) => isPair(p) && isScalar(p.key) && String(p.key.value) === String(seg))
      if (!pair) break
      const keyAt = offsetOf(pair.key)
      if (last && which === 'key' && keyAt !== undefined) { at = keyAt; break }
      node = pair.value
      at = offsetOf(node) ?? keyAt ?? at
    } else if (isSeq(node) && typeof seg === 'number' && node.items[seg] !== undefined) {
      node = node.items[seg]
      at = offsetOf(node) ?? at
    } else {
      break
    }
  }
  const pos = src.lines.linePos(at)
  return { line: pos.line, col: pos.col }
}

function offsetOf(node: unknown): number | undefined {
  const range = (node as Node | null | undefined)?.range
  return range ? range[0] : undefined
}

function firstLine(s: string): string {
  return s.split('\n')[0] ?? s
}
