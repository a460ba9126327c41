// The logger's own metric. hostmesh_log_dropped_lines_total is a counter read from the logger
// at scrape time (collect() sets it), so the logger needs no registry and the write path no
// extra work: only dropped lines cost anything, and they cost one addition.
import { Counter, type Registry } from 'prom-client'
import type { RootLogger } from './logger.ts'

export function registerLogMetrics(registry: Registry, log: Pick<RootLogger, 'droppedLines'>): void {
  new Counter({
    name: 'hostmesh_log_dropped_lines_total',
    help: 'Log lines dropped because stdout could not keep up; the log buffer is bounded.',
    registers: [registry],
    collect() {
      this.reset()
      this.inc(log.droppedLines)
    },
  })
}
