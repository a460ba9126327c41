// A pino destination that keeps every JSON line, for tests that read the logs.
import { Writable } from 'node:stream'

export function logSink(): { dest: Writable; lines: () => Array<Record<string, unknown>> } {
  const chunks: string[] = []
  const dest = new Writable({ write(chunk: Buffer, _enc, cb) { chunks.push(chunk.toString()); cb() } })
  return { dest, lines: () => chunks.join('').split('\n').filter(Boolean).map((l) => JSON.parse(l) as Record<string, unknown>) }
}
