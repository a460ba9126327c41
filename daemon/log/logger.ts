// pino JSON on stdout (journald collects it). One root logger per process, a child per
// component so every line says where it came from. Writes are asynchronous: the access log is
// on the data path and must not block the event loop; flush() runs at shutdown.
//
// Asynchronous writes queue in memory while stdout is slower than the log (journald busy, a
// full pipe). The queue is bounded (LOG_BUFFER_MAX_BYTES): beyond it whole lines are dropped,
// counted in droppedLines (hostmesh_log_dropped_lines_total), and the process does not grow.
import { EventEmitter } from 'node:events'
import { pino, type Logger, type DestinationStream } from 'pino'
import type { LogLevel } from '../config/schema.ts'

export interface RootLogger {
  readonly root: Logger
  component(name: string): Logger
  setLevel(level: LogLevel): void
  flush(): void
  /** Lines dropped because the destination's buffer was full (0 for a stream without a bound). */
  readonly droppedLines: number
  /** Writes whole lines another logger formatted (a worker thread's) to this logger's destination. */
  forward(lines: string): void
}

/**
 * At most this many bytes of log lines wait in memory for stdout. A peer that makes the
 * daemon log faster than journald reads (3,600 lines/s of 4 KB each were seen) otherwise grows
 * the unbounded buffer by gigabytes, and that memory never comes back. 8 MiB holds a few
 * seconds of any burst journald can absorb (about 2,000 lines of 4 KB, 30,000 ordinary ones):
 * plenty for a short stall, small next to the daemon's ~160 MB RSS. Lines beyond it are lost.
 */
export const LOG_BUFFER_MAX_BYTES = 8 * 1024 * 1024

/** The asynchronous destination createLogger uses (a SonicBoom). */
export type LogDestination = ReturnType<typeof pino.destination>

/**
 * An asynchronous pino destination on a file descriptor (stdout unless told) that holds at
 * most maxLength bytes: a write that would go beyond is dropped whole and sonic-boom emits
 * 'drop' with its data, which createLogger counts.
 */
export function logDestination(fd = 1, maxLength = LOG_BUFFER_MAX_BYTES): LogDestination {
  return pino.destination({ dest: fd, sync: false, maxLength })
}

// Key material must never reach a log line, whatever object a caller passes in.
// pino's redaction has no recursive wildcard, so depth is listed up to four levels; the
// certificate code (issue #4) must also never pass key objects to a logger at all.
const REDACT = ['key', 'privateKey', 'keyPem', '*.key', '*.privateKey', '*.keyPem', '*.*.key', '*.*.privateKey', '*.*.keyPem', '*.*.*.key', '*.*.*.privateKey', '*.*.*.keyPem']

/**
 * dest: where lines go; stdout through logDestination() when absent. A stream passed in is
 * used as it is (no bound is added); if it emits sonic-boom's 'drop' (a logDestination() on
 * another fd does) its dropped lines are counted too.
 */
export function createLogger(level: LogLevel, bindings: Record<string, string>, dest?: DestinationStream): RootLogger {
  const stream = dest ?? logDestination()
  let dropped = 0
  if (stream instanceof EventEmitter) stream.on('drop', (data: string | Buffer) => { dropped += countLines(data) })
  const root = pino({
    level,
    base: { ...bindings },
    timestamp: pino.stdTimeFunctions.isoTime,
    redact: { paths: REDACT, censor: '[redacted]' },
    formatters: { level: (label) => ({ level: label }) },
  }, stream)
  const children = new Map<string, Logger>()
  return {
    root,
    component(name) {
      let child = children.get(name)
      if (!child) {
        child = root.child({ component: name })
        children.set(name, child)
      }
      return child
    },
    setLevel(next) {
      root.level = next
      for (const child of children.values()) child.level = next
    },
    flush() {
      const s = stream as { flushSync?: () => void }
      try { s.flushSync?.() } catch { /* stdout already closed: nothing left to save */ }
    },
    get droppedLines() {
      return dropped
    },
    forward(lines) {
      stream.write(lines)
    },
  }
}

/** Lines in one dropped write (pino writes whole lines, each ending in "\n"; a fragment without one counts too). */
function countLines(data: string | Buffer): number {
  const text = typeof data === 'string' ? data : data.toString('latin1')
  let n = 0
  for (let i = text.indexOf('\n'); i !== -1; i = text.indexOf('\n', i + 1)) n++
  return text.length > 0 && !text.endsWith('\n') ? n + 1 : n
}
