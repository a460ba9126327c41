// Stage 5 of a reload, and what triggers it. The watcher never trusts event types: any event
// in the policy dir (a write, an atomic rename, a ConfigMap `..data` symlink swap) only
// schedules a reload. An event naming a policy file narrows that reload's stat to the named
// files (editor and `write; rename` temp dotfiles need no stat of their own); any other event
// (the dir itself, `..data`, an error) stats every file. Files whose stat changed are re-read
// (start, SIGHUP and the periodic resync re-read all) and one content hash is compared.
// Bursts are coalesced; reloads never overlap; a failed reload keeps the last good snapshot.
import { EventEmitter } from 'node:events'
import { watch, type FSWatcher } from 'chokidar'
import { basename, dirname } from 'node:path'
import type { SourceProblem } from './errors.ts'
import { isPolicyFileName, ParseCache, readPolicyDir, StatCache } from './load.ts'
import { buildSnapshot, type BuildOptions } from './pipeline.ts'
import type { Snapshot } from './snapshot.ts'

export interface PolicyWatcherOptions extends Omit<BuildOptions, 'generation' | 'previous'> {
  readonly dir: string
  /** Accept an empty or missing policy dir after a policy has been loaded. */
  readonly allowEmpty?: boolean
  /** Quiet time after the last event before reloading (default 10 ms). */
  readonly debounceMs?: number
  /** Reload at the latest this long after the first event of a burst (default 250 ms). */
  readonly maxDelayMs?: number
  /** Re-read on a timer too, in case an event was missed (network filesystems, overflows). */
  readonly resyncMs?: number
}

export type ReloadResult = 'success' | 'failure' | 'unchanged'

export interface ReloadEvent {
  readonly result: ReloadResult
  readonly reason: string
  readonly at: Date
  readonly durationMs: number
  readonly generation: number
  readonly problems: readonly SourceProblem[]
}

export interface ReloadError {
  readonly at: string
  readonly reason: string
  readonly hash: string
  readonly problems: readonly SourceProblem[]
}

interface Events {
  snapshot: [snapshot: Snapshot, previous: Snapshot | undefined]
  reload: [event: ReloadEvent]
  /** The file watcher failed (e.g. out of inotify watches); the periodic resync still runs. */
  watchError: [error: Error]
}

export class PolicyWatcher extends EventEmitter<Events> {
  readonly #opts: PolicyWatcherOptions
  readonly #cache = new ParseCache()
  readonly #stats = new StatCache()
  #current: Snapshot | undefined
  #lastError: ReloadError | undefined
  #lastAttemptHash: string | undefined
  #fsWatcher: FSWatcher | undefined
  #debounce: NodeJS.Timeout | undefined
  #burstStart = 0
  #resync: NodeJS.Timeout | undefined
  #running: Promise<ReloadEvent> | undefined
  #followUp: Promise<ReloadEvent> | undefined
  #again: string | undefined
  /** Policy file names events reported since the last reload began; 'all' after any other event. */
  #changed: Set<string> | 'all' = 'all'
  #closed = false

  constructor(opts: PolicyWatcherOptions) {
    super()
    this.#opts = opts
  }

  /** The snapshot in force; undefined until the first good load. */
  get current(): Snapshot | undefined {
    return this.#current
  }

  /** Generation of the snapshot in force; 0 before the first good load. */
  get #generation(): number {
    return this.#current?.generation ?? 0
  }

  /** The most recent failed reload, cleared by the next success. */
  get lastError(): ReloadError | undefined {
    return this.#lastError
  }

  /** First load, then watching. Resolves with the first load's outcome (a failure is not thrown). */
  async start(): Promise<ReloadEvent> {
    // Watching starts before the first read: a file written while the first read runs is
    // then seen by both, never by neither (it would wait for the periodic resync).
    // Watch the parent too: the policy dir itself may be created, removed or swapped.
    this.#fsWatcher = watch([this.#opts.dir, dirname(this.#opts.dir)], {
      ignoreInitial: true,
      depth: 1,
      followSymlinks: true,
      ignored: (path) => path !== this.#opts.dir && dirname(path) === dirname(this.#opts.dir),
    })
    // 'raw' too: chokidar folds quick successive writes into one 'change' and may drop a
    // repeat within its throttle window; any raw inotify event is enough to re-read.
    this.#fsWatcher.on('all', (_event, path) => {
      this.#note(dirname(path) === this.#opts.dir ? basename(path) : undefined)
      this.#schedule()
    })
    this.#fsWatcher.on('raw', (_event, path, details) => {
      // Raw events are not filtered by `ignored`: keep those about the policy dir, not its siblings.
      const watched = (details as { watchedPath?: string } | undefined)?.watchedPath ?? ''
      if (watched === this.#opts.dir || watched.startsWith(`${this.#opts.dir}/`) || path === basename(this.#opts.dir)) {
        this.#note(watched === this.#opts.dir && typeof path === 'string' ? path : undefined)
        this.#schedule()
      }
    })
    this.#fsWatcher.on('error', (err) => {
      this.emit('watchError', err instanceof Error ? err : new Error(String(err)))
      this.#note(undefined)
      this.#schedule()
    })
    await new Promise<void>((resolve) => this.#fsWatcher!.once('ready', resolve))
    const first = await this.reload('start')
    if (this.#opts.resyncMs) this.#resync = setInterval(() => void this.reload('resync'), this.#opts.resyncMs).unref()
    return first
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#debounce)
    clearInterval(this.#resync)
    await this.#fsWatcher?.close()
    await this.#running
    await this.#followUp
  }

  /**
   * Reload now (start, SIGHUP, file events). Reloads never overlap: a call during a reload
   * gets one follow-up reload, shared by every such call, that starts when the current one
   * ends and so sees everything written before it was asked for.
   */
  reload(reason: string): Promise<ReloadEvent> {
    if (this.#closed) return Promise.resolve({ result: 'unchanged', reason, at: new Date(), durationMs: 0, generation: this.#generation, problems: [] })
    if (this.#running) {
      // A forced reason wins over a plain event, so SIGHUP is never downgraded to "unchanged".
      if (this.#again !== 'SIGHUP') this.#again = reason
      this.#followUp ??= this.#running.then(() => {
        this.#followUp = undefined
        const next = this.#again ?? reason
        this.#again = undefined
        return this.reload(next)
      })
      return this.#followUp
    }
    this.#running = this.#reloadOnce(reason).finally(() => { this.#running = undefined })
    return this.#running
  }

  /** Records what an event names: a file directly in the policy dir, or undefined for anything else. */
  #note(name: string | undefined): void {
    if (this.#changed === 'all') return
    if (name !== undefined && isPolicyFileName(name)) this.#changed.add(name)
    // A plain dotfile is a temp file (`.x.yaml.tmp`, `.x.swp`) that becomes a policy file
    // by a rename, which is reported under the new name. `..data` is a ConfigMap swap.
    else if (name === undefined || !name.startsWith('.') || name.startsWith('..')) this.#changed = 'all'
  }

  #schedule(): void {
    if (this.#closed) return
    const now = Date.now()
    if (!this.#debounce) this.#burstStart = now
    clearTimeout(this.#debounce)
    const wait = Math.min(this.#opts.debounceMs ?? 10, Math.max(0, this.#burstStart + (this.#opts.maxDelayMs ?? 250) - now))
    this.#debounce = setTimeout(() => {
      this.#debounce = undefined
      void this.reload('watch')
    }, wait)
  }

  async #reloadOnce(reason: string): Promise<ReloadEvent> {
    const started = performance.now()
    const at = new Date()
    // Events trust file metadata to skip unchanged files; start, SIGHUP and the periodic
    // resync re-read every byte.
    const fresh = reason !== 'watch'
    const changed = this.#changed
    this.#changed = new Set()
    const dir = await readPolicyDir(this.#opts.dir, this.#opts.limits, { statCache: this.#stats, fresh, ...(changed === 'all' ? {} : { changed }) })
    const done = (result: ReloadResult, problems: readonly SourceProblem[] = []): ReloadEvent => {
      const event = { result, reason, at, durationMs: performance.now() - started, generation: this.#generation, problems }
      this.emit('reload', event)
      return event
    }
    // Same bytes as the last attempt (good or bad): nothing to do. SIGHUP forces a rebuild.
    if (dir.problems.length === 0 && dir.hash === this.#lastAttemptHash && reason !== 'SIGHUP' && reason !== 'start') return done('unchanged')
    // A read that failed (a file vanished mid-swap, a dangling link) is not "these bytes":
    // remember nothing, so the next event or resync tries again.
    this.#lastAttemptHash = dir.problems.length === 0 ? dir.hash : undefined

    const previous = this.#current
    const result = buildSnapshot(dir, { ...this.#opts, cache: this.#cache, generation: this.#generation + 1, ...(previous ? { previous } : {}) })
    if (!result.ok) return this.#fail(dir.hash, reason, result.problems, done)
    // Counted in documents, not files: a truncated file (`>` or `cp` mid-write) or one left
    // with only comments must not wipe the mesh either.
    if (previous && !this.#opts.allowEmpty && documents(previous) > 0 && documents(result.snapshot) === 0) {
      return this.#fail(dir.hash, reason, [{
        file: this.#opts.dir, line: 1, col: 1, key: '',
        message: `the policy dir ${dir.missing ? 'is missing' : dir.files.length === 0 ? 'holds no policy file' : 'holds no policy document'}; keeping the last good policy (generation ${previous.generation}). An empty policy is refused after one was loaded, to survive half-finished deploys; set allowEmptyPolicy: true in the node config to allow it`,
      }], done)
    }
    this.#current = result.snapshot
    this.#lastError = undefined
    this.emit('snapshot', result.snapshot, previous)
    return done('success')
  }

  #fail(hash: string, reason: string, problems: readonly SourceProblem[], done: (r: ReloadResult, p: readonly SourceProblem[]) => ReloadEvent): ReloadEvent {
    this.#lastError = { at: new Date().toISOString(), reason, hash, problems }
    return done('failure', problems)
  }
}

function documents(s: Snapshot): number {
  return Object.values(s.counts).reduce((a, b) => a + b, 0)
}
