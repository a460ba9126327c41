// pino JSON on stdout (journald collects it). One root logger per process, a child per
// component so every line says where it came from. Writes are asynchronous: the access log is
// on the data path and must not block the event loop; flush() runs at shutdown.
import { pino, type Logger, type DestinationStream } from 'pino'
import type { LogLevel } from '../config/schema.ts'

export type { Logger }

export interface RootLogger {
  readonly root: Logger
  component(name: string): Logger
  setLevel(level: LogLevel): void
  flush(): void
}

// Key material must never reach a log line, whatever object a caller passes in.
// pino's redaction has no recursive wildcard, so depth is listed up to four levels; the
// certificate code (issue #4) must also never pass key objects to a logger at all.
const REDACT = ['key', 'privateKey', 'keyPem', '*.key', '*.privateKey', '*.keyPem', '*.*.key', '*.*.privateKey', '*.*.keyPem', '*.*.*.key', '*.*.*.privateKey', '*.*.*.keyPem']

export function createLogger(level: LogLevel, bindings: Record<string, string>, dest?: DestinationStream): RootLogger {
  const stream = dest ?? pino.destination({ dest: 1, sync: false })
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
  }
}
