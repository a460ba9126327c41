// The primary's side of the worker threads (docs/workers.md): starts them, posts each the
// snapshot, the leaves and the log level, asks them what the admin endpoints show, drains
// them with the rest of the daemon, and replaces one that dies. The primary's own data plane
// is worker 0 and keeps the sockets systemd passed in; the threads bind their own sockets in
// the same reuseport groups, so while a thread is down the kernel hands its share of new
// connections to the others.
import { Worker } from 'node:worker_threads'
import { Counter, type Registry } from 'prom-client'
import type { Snapshot } from '../../policy/snapshot.ts'
import type { Logger } from '../../base/logger.ts'
import type { LogLevel, NodeConfig } from '../config/schema.ts'
import { WorkerStartError } from './errors.ts'
import type { Answers, FromWorker, Question, ToWorker, WorkerInit } from './messages.ts'
import type { CertsPost } from './posted-certs.ts'

export interface WorkerThreadsOptions {
  /** Threads besides the primary's data plane: `workers` less one. */
  readonly threads: number
  readonly config: NodeConfig
  readonly hostState: SharedArrayBuffer
  readonly log: Logger
  /** Writes a worker's log lines to the primary's destination. */
  readonly forward: (lines: string) => void
  readonly registry: Registry
  readonly snapshot: () => Snapshot | undefined
  readonly certs: () => CertsPost
  /** Every thread's listeners bound (true), or one is missing a listener (false): /ready's "listeners". */
  readonly bound: (ok: boolean) => void
  /** A thread ejected an endpoint: the main thread's balancer keeps it out too. */
  readonly ejected: (endpoint: string, untilMs: number) => void
  /** The worker module; tests may pass a different one. */
  readonly entry?: URL
}

/** How long an admin question waits for a thread; a thread that does not answer is left out. */
const ANSWER_TIMEOUT_MS = 2000
/** Replacement backoff: a thread that keeps dying is restarted at most this often, doubling from the first. */
const RESTART_FIRST_MS = 100
const RESTART_MAX_MS = 60_000
/** A thread that ran this long before dying was healthy: the next restart starts from the first backoff again. */
const HEALTHY_AFTER_MS = 60_000

interface Thread {
  readonly id: number
  readonly worker: Worker
  readonly startedAt: number
  started: boolean
  bound: boolean
  drained?: () => void
}

export class WorkerThreads {
  readonly #opts: WorkerThreadsOptions
  readonly #threads = new Map<number, Thread>()
  readonly #answers = new Map<number, (answer: Answers[Question]) => void>()
  readonly #restarts: Counter<'worker'>
  readonly #restartTimers = new Map<number, NodeJS.Timeout>()
  readonly #backoff = new Map<number, number>()
  #nextQuestion = 1
  #closing = false
  #level: LogLevel
  #certsQueued = false

  constructor(opts: WorkerThreadsOptions) {
    this.#opts = opts
    this.#level = opts.config.logLevel
    this.#restarts = new Counter({ name: 'hostmesh_worker_restarts_total', help: 'Worker threads that died and were replaced, by worker.', labelNames: ['worker'], registers: [opts.registry] })
  }

  /**
   * Starts every thread; resolves once each has bound its listeners or failed to. A thread that
   * cannot start does not stop the daemon (the main thread serves every port alone): it is
   * logged and tried again with the replacement backoff.
   */
  async start(): Promise<void> {
    await Promise.all(Array.from({ length: this.#opts.threads }, (_, i) => this.#spawn(i + 1).catch((err: unknown) => this.#startFailed(i + 1, err))))
  }

  /** Every thread follows `snapshot` (the primary posts each one once, in generation order). */
  follow(snapshot: Snapshot): void {
    this.#broadcast({ type: 'snapshot', snapshot })
  }

  /** The leaves changed (issued, renewed, rotated, dropped): posted once per turn of the event loop. */
  certsChanged(): void {
    if (this.#certsQueued) return
    this.#certsQueued = true
    setImmediate(() => {
      this.#certsQueued = false
      this.#broadcast({ type: 'certs', certs: this.#opts.certs() })
    })
  }

  /** An endpoint was ejected by thread `by` (0: the main thread): every other thread keeps it out as long. */
  ejectedElsewhere(endpoint: string, untilMs: number, by = 0): void {
    for (const t of this.#threads.values()) if (t.id !== by) post(t.worker, { type: 'ejected', endpoint, untilMs })
  }

  setLevel(level: LogLevel): void {
    this.#level = level
    this.#broadcast({ type: 'logLevel', level })
  }

  /** Each running thread's answer to `question`; a thread that does not answer in time is left out. */
  ask<Q extends Question>(question: Q): Promise<Answers[Q][]> {
    const asked = [...this.#threads.values()].filter((t) => t.started).map((t) => new Promise<Answers[Q] | undefined>((resolve) => {
      const id = this.#nextQuestion++
      const timer = setTimeout(() => {
        this.#answers.delete(id)
        resolve(undefined)
      }, ANSWER_TIMEOUT_MS)
      this.#answers.set(id, (answer) => {
        clearTimeout(timer)
        this.#answers.delete(id)
        resolve(answer as Answers[Q])
      })
      post(t.worker, { type: 'ask', id, question })
    }))
    return Promise.all(asked).then((all) => {
      const answered: Answers[Q][] = []
      for (const a of all) if (a !== undefined) answered.push(a as Answers[Q])
      return answered
    })
  }

  /** Running threads' ids (for tests and /stats). */
  get running(): number[] {
    return [...this.#threads.values()].filter((t) => t.started).map((t) => t.id).sort((a, b) => a - b)
  }

  /** Ends thread `id` as a crash would (tests): the primary sees it exit and replaces it. */
  async kill(id: number): Promise<void> {
    await this.#threads.get(id)?.worker.terminate()
  }

  /** Graceful: every thread stops accepting; resolves when their open connections have ended. */
  async close(): Promise<void> {
    this.#closing = true
    for (const timer of this.#restartTimers.values()) clearTimeout(timer)
    await Promise.all([...this.#threads.values()].map((t) => new Promise<void>((resolve) => {
      t.drained = resolve
      t.worker.once('exit', () => resolve())
      post(t.worker, { type: 'drain' })
    })))
    await Promise.all([...this.#threads.values()].map((t) => t.worker.terminate()))
  }

  /** The drain deadline passed, or start failed: every thread ends now. */
  destroy(): void {
    this.#closing = true
    for (const timer of this.#restartTimers.values()) clearTimeout(timer)
    for (const t of this.#threads.values()) {
      this.#threads.delete(t.id)
      post(t.worker, { type: 'destroy' })
      // What is still open goes with the thread.
      setTimeout(() => void t.worker.terminate(), 100).unref()
    }
  }

  #spawn(id: number): Promise<void> {
    const init: WorkerInit = { id, config: this.#opts.config, snapshot: this.#opts.snapshot(), certs: this.#opts.certs(), hostState: this.#opts.hostState, workers: this.#opts.threads + 1 }
    const worker = new Worker(this.#opts.entry ?? ENTRY, { workerData: init, stdout: false, stderr: false })
    const t: Thread = { id, worker, startedAt: Date.now(), started: false, bound: false }
    this.#threads.set(id, t)
    if (this.#level !== this.#opts.config.logLevel) post(worker, { type: 'logLevel', level: this.#level })
    return new Promise<void>((resolve, reject) => {
      worker.on('message', (m: FromWorker) => {
        switch (m.type) {
          case 'log':
            this.#opts.forward(m.lines)
            return
          case 'started':
            t.started = true
            t.bound = true
            this.#reportBound()
            // A snapshot compiled while it started was not in its workerData.
            if (this.#opts.snapshot() !== init.snapshot) post(worker, { type: 'snapshot', snapshot: this.#opts.snapshot()! })
            this.#certsOut(worker, init.certs)
            resolve()
            return
          case 'failed':
            reject(new WorkerStartError(id, m.message, { cause: Object.assign(new Error(m.message), m.code !== undefined ? { code: m.code } : {}) }))
            return
          case 'bound':
            t.bound = m.ok
            this.#reportBound()
            return
          case 'answer':
            this.#answers.get(m.id)?.(m.answer)
            return
          case 'ejected':
            this.#opts.ejected(m.endpoint, m.untilMs)
            this.ejectedElsewhere(m.endpoint, m.untilMs, id)
            return
          case 'drained':
            t.drained?.()
        }
      })
      worker.on('error', (err) => {
        this.#opts.log.error({ worker: id, err }, 'worker thread failed')
        reject(new WorkerStartError(id, err.message, { cause: err }))
      })
      worker.once('exit', (code) => {
        this.#threads.delete(id)
        this.#reportBound()
        if (this.#closing) return
        if (!t.started) return reject(new WorkerStartError(id, `exited with code ${code} before its listeners were bound`))
        this.#replace(t, code)
      })
    })
  }

  /** A thread died: the others keep serving; a new one takes its place after a backoff that grows while it keeps dying. */
  #replace(t: Thread, code: number): void {
    if (Date.now() - t.startedAt >= HEALTHY_AFTER_MS) this.#backoff.delete(t.id)
    this.#restarts.inc({ worker: String(t.id) })
    const delay = this.#respawn(t.id)
    this.#opts.log.error({ worker: t.id, exitCode: code, restartInMs: delay }, 'worker thread exited; the other workers keep serving and a new one replaces it')
  }

  #startFailed(id: number, err: unknown): void {
    this.#threads.delete(id)
    if (this.#closing) return
    const delay = this.#respawn(id)
    const code = (err as { cause?: { code?: string } }).cause?.code
    this.#opts.log.error({ worker: id, error: (err as Error).message, retryInMs: delay }, code === 'EADDRINUSE' || /EADDRINUSE/.test((err as Error).message)
      ? 'worker thread could not bind a mesh port: the main thread\'s socket for it is not in a reuseport group (hostmesh.socket needs ReusePort=yes; a socket stored by an older version is replaced when its workload\'s port changes); the main thread serves it alone'
      : 'worker thread could not start; the main thread serves alone until it does')
  }

  /** Starts thread `id` again after its backoff (doubling while it keeps failing); the delay. */
  #respawn(id: number): number {
    const delay = Math.min(RESTART_MAX_MS, (this.#backoff.get(id) ?? RESTART_FIRST_MS / 2) * 2)
    this.#backoff.set(id, delay)
    this.#restartTimers.set(id, setTimeout(() => {
      this.#restartTimers.delete(id)
      if (this.#closing) return
      this.#spawn(id).then(
        () => this.#opts.log.warn({ worker: id }, 'worker thread started'),
        (err: unknown) => this.#startFailed(id, err),
      )
    }, delay))
    return delay
  }

  /** Leaves minted while the thread started, after its workerData was made. */
  #certsOut(worker: Worker, sent: CertsPost): void {
    const now = this.#opts.certs()
    if (now !== sent) post(worker, { type: 'certs', certs: now })
  }

  #reportBound(): void {
    this.#opts.bound([...this.#threads.values()].every((t) => !t.started || t.bound))
  }

  #broadcast(m: ToWorker): void {
    for (const t of this.#threads.values()) post(t.worker, m)
  }
}

/** entry.ts from a checkout (type stripping), entry.js in the built package (dist/). */
const ENTRY = new URL(import.meta.url.endsWith('.ts') ? './entry.ts' : './entry.js', import.meta.url)

function post(worker: Worker, m: ToWorker): void {
  worker.postMessage(m)
}
