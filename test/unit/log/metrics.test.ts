import { Registry } from 'prom-client'
import t from 'tap'
import { registerLogMetrics } from '../../../daemon/log/metrics.ts'

t.test('hostmesh_log_dropped_lines_total is a counter read from the logger at each scrape', async (t) => {
  const registry = new Registry()
  const log = { droppedLines: 0 }
  registerLogMetrics(registry, log)
  let text = await registry.metrics()
  t.match(text, /^# HELP hostmesh_log_dropped_lines_total Log lines dropped because stdout could not keep up; the log buffer is bounded\.$/m)
  t.match(text, /^# TYPE hostmesh_log_dropped_lines_total counter$/m)
  t.match(text, /^hostmesh_log_dropped_lines_total 0$/m)
  log.droppedLines = 10768
  text = await registry.metrics()
  t.match(text, /^hostmesh_log_dropped_lines_total 10768$/m)
  log.droppedLines = 10770
  t.match(await registry.metrics(), /^hostmesh_log_dropped_lines_total 10770$/m, 'not added up across scrapes')
})
