// A worker thread (docs/workers.md): one more data plane, on its own event loop. It binds its
// own socket on every mesh port (SO_REUSEPORT, so the kernel spreads connections over the
// threads), follows the snapshots the primary compiled and posts, and serves with the leaves
// the primary posts. It reads no policy or certificate file, holds no CA key, and answers the
// primary's admin questions about its own connections, balancer and metrics.
import { parentPort, workerData } from 'node:worker_threads'
import type { Snapshot } from '../../policy/snapshot.ts'
import { deepFreeze } from '../../policy/freeze.ts'
import { clustersView } from '../admin/clusters.ts'
import { WORKER_SOCKETS } from '../listeners/bind.ts'
import { SharedHostState } from '../limits/shared-host-state.ts'
import { createLogger } from '../log/logger.ts'
import { registerLogMetrics } from '../log/metrics.ts'
import { createThreadRegistry } from '../metrics/registry.ts'
import { nodesByIdentity } from '../run/placement.ts'
import { DataPlane } from '../run/data-plane.ts'
import { MemoryRelief } from '../run/memory.ts'
import { PortDestination } from './log-port.ts'
import type { Answers, FromWorker, Question, ToWorker, WorkerInit } from './messages.ts'
import { PostedCertificates } from './posted-certs.ts'

const port = parentPort
if (!port) throw new Error('daemon/workers/entry.ts runs as a worker thread of the hostmesh daemon')
const init = workerData as WorkerInit
const { config } = init
const post = (m: FromWorker): void => port.postMessage(m)

const destination = new PortDestination(port)
const log = createLogger(config.logLevel, { node: config.node.name, worker: String(init.id) }, destination)
// Its own registry: its isolate's heap, collections and event loop, without the process's
// metrics (the primary exports those once); the primary merges every worker's with its own.
const registry = createThreadRegistry()
registerLogMetrics(registry, { get droppedLines() { return destination.dropped } })

// Structured clone drops freezing: each copy is frozen again, as the primary's was.
let snapshot = init.snapshot && deepFreeze(init.snapshot) as Snapshot
let placement = nodesByIdentity(snapshot)
const certs = new PostedCertificates(config.trustDomain, config.certificates.mode === 'ca' ? (id) => placement.get(id) : undefined, log.component('certs'), registry)
certs.update(init.certs)
const dataPlane = new DataPlane(config, { manager: certs, verifier: certs.verifier }, { registry }, log.component('dataplane'), () => snapshot, WORKER_SOCKETS,
  (ok) => post({ type: 'bound', ok }), { hostState: new SharedHostState(init.hostState), workers: init.workers, ejected: (endpoint, untilMs) => post({ type: 'ejected', endpoint, untilMs }) })

// This thread's pooled pages show only in the process's RSS, which the main thread watches: it
// asks every thread to collect in one round (run/memory.ts) and trims malloc after.
const memory = new MemoryRelief({ activity: () => dataPlane.activity, log: log.component('memory'), registry })

const answers: { readonly [Q in Question]: () => Promise<Answers[Q]> | Answers[Q] } = {
  metrics: () => registry.getMetricsAsJSON(),
  // Breakers are shared memory, the same in every thread; the retry budgets are per thread.
  clusters: () => clustersView(snapshot, dataPlane.balancer, { breakers: dataPlane.breakers, retryBudgetRemaining: (s) => dataPlane.retryBudgets.remaining(s) }),
  listeners: () => dataPlane.listeners(),
  relieve: () => memory.relieveIfQuiet(),
}

port.on('message', (m: ToWorker) => {
  switch (m.type) {
    case 'snapshot':
      snapshot = deepFreeze(m.snapshot) as Snapshot
      placement = nodesByIdentity(snapshot)
      void dataPlane.follow(snapshot)
      return
    case 'certs':
      certs.update(m.certs)
      return
    case 'logLevel':
      log.setLevel(m.level)
      return
    case 'ejected':
      dataPlane.ejectedElsewhere(m.endpoint, m.untilMs)
      return
    case 'ask':
      void Promise.resolve(answers[m.question]()).then((answer) => post({ type: 'answer', id: m.id, answer }))
      return
    case 'drain':
      memory.stop()
      void dataPlane.close().then(() => {
        destination.flush()
        post({ type: 'drained' })
      })
      return
    case 'destroy':
      memory.stop()
      dataPlane.destroy()
      destination.flush()
      port.close()
  }
})


try {
  await dataPlane.start(snapshot)
  post({ type: 'started' })
} catch (err) {
  const e = err as NodeJS.ErrnoException
  log.root.error({ err }, 'worker could not bind its listeners')
  destination.flush()
  post({ type: 'failed', message: e.message, ...(e.code !== undefined ? { code: e.code } : {}) })
  dataPlane.destroy()
  port.close()
}
