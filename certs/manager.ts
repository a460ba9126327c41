// The rotation manager: one slot per local workload identity, each in an explicit state
// (Initializing, Available, Unavailable, as ztunnel). A slot's certificate comes from the
// node issuer (CA mode: minted in memory, renewed at half-life ±10% jitter, exponential
// backoff on failure) or from files an external issuer writes (file mode: watched,
// hot-swapped). Either way a new certificate is validated against the trust bundle before
// it is published, and the last good one stays until it expires.
//
// Publishing builds a node:tls SecureContext; handshakes take the current one, so rotation
// affects only new handshakes and never an established connection. Keys live only in the
// contexts and the slots' private material; views and logs never see them.
import { createHash, createPrivateKey } from 'node:crypto'
import { EventEmitter } from 'node:events'
import { readFile } from 'node:fs/promises'
import { join } from 'node:path'
import type { SecureContext } from 'node:tls'
import { watch, type FSWatcher } from 'chokidar'
import type { Logger } from '../base/logger.ts'
import { bundlePath, loadBundle, type TrustBundle } from './bundle.ts'
import { CertFileError, CertInvalidError, CertUnavailableError } from './errors.ts'
import { NodeIssuer, type LeafMaterial } from './issuer.ts'
import { leafContext } from './leaf-context.ts'
import { parseCertificates } from './pem.ts'
import { parseWorkloadId, serverName } from './spiffe.ts'
import { verifyPeer, type TrustPolicy } from './verify.ts'

export type CertState = 'Initializing' | 'Available' | 'Unavailable'
export type CertMode = 'ca' | 'file'

export interface CertManagerOptions {
  readonly mode: CertMode
  readonly certDir: string
  readonly trustDomain: string
  readonly node: string
  /** CA mode: leaf lifetime (default 24 h). */
  readonly leafTtlMs?: number
  readonly log: Logger
  /** Watch certDir (bundle, CA files, file-mode files) and hot-swap on change. Default true. */
  readonly watch?: boolean
  /** Re-read every file on a timer too, in case an event was missed. Default 60 s; 0 disables. */
  readonly resyncMs?: number
}

/** What /certs shows for one identity. No key material, no certificate body. */
export interface CertView {
  readonly identity: string
  readonly state: CertState
  readonly serial?: string
  readonly notBefore?: string
  readonly notAfter?: string
  readonly issuer?: string
  readonly nextRenewal?: string
  readonly lastError?: string
}

interface Published {
  /** When it was published: the renewal clock starts here, not at the backdated notBefore. */
  readonly at: number
  /** The bundle its context trusts: a new bundle means a new context. */
  readonly bundleHash: string
  readonly serial: string
  readonly notBefore: Date
  readonly notAfter: Date
  readonly issuer: string
  readonly context: SecureContext
  readonly material: LeafMaterial
  readonly hash: string
}

interface Slot {
  readonly identity: string
  state: CertState
  current?: Published
  timer?: NodeJS.Timeout
  failures: number
  lastError?: string
  nextRenewal?: Date
  /** When the slot's timer is due (renewal, retry or expiry); kept so an early wake-up re-arms to the same time. */
  dueAt?: number
  /** Settles when the first attempt (success or not) is over. */
  readonly first: Promise<void>
  settleFirst: () => void
  busy?: Promise<void>
}

interface Events {
  /** A certificate was published for an identity (first issue, renewal, file swap, bundle change). */
  published: [identity: string, view: CertView]
  /** An identity has no usable certificate any more. */
  unavailable: [identity: string, reason: string]
  /** A reload of bundle / CA / files ended; `error` if something was rejected. */
  reloaded: [reason: string, error: Error | undefined]
}

/**
 * What the data path needs of certificates: a context to dial as a local identity, and one to
 * serve a TLS server name. CertManager is one; a worker thread's posted copy is another
 * (daemon/workers/posted-certs.ts), and neither lets the data path sign anything.
 */
export interface LeafContexts {
  /** The context for a local identity, waiting only while its first certificate is on its way. */
  ensure(identity: string): Promise<SecureContext>
  contextForServerName(name: string): SecureContext | undefined
}

/** A published leaf as a worker thread is handed it: the material to build its own context from. */
export interface LeafPost {
  readonly identity: string
  readonly material: LeafMaterial
}

export const DEFAULT_LEAF_TTL_MS = 24 * 3_600_000
const MAX_BACKOFF_MS = 300_000
const MAX_TIMER_MS = 2 ** 31 - 1

export class CertManager extends EventEmitter<Events> implements LeafContexts {
  readonly #opts: CertManagerOptions
  readonly #slots = new Map<string, Slot>()
  /** The last trust load failed exactly as the one before, on a watcher event. */
  #repeatedTrustError = false
  readonly #byServerName = new Map<string, string>()
  #bundle: TrustBundle | undefined
  #issuer: NodeIssuer | undefined
  #trustError: Error | undefined
  #watcher: FSWatcher | undefined
  #debounce: NodeJS.Timeout | undefined
  #resync: NodeJS.Timeout | undefined
  #reloading: Promise<void> | undefined
  #again = false
  #closed = false

  constructor(opts: CertManagerOptions) {
    super()
    this.#opts = opts
  }

  get mode(): CertMode {
    return this.#opts.mode
  }

  /** The bundle in force (undefined until a valid one was read). */
  get bundle(): TrustBundle | undefined {
    return this.#bundle
  }

  /** Reads the bundle (and the node CA), issues a certificate for each identity, then watches. */
  async start(identities: Iterable<string>): Promise<void> {
    const ids = [...identities]
    await this.#loadTrust('start', ids.length)
    await this.sync(ids)
    if (this.#opts.watch ?? true) {
      this.#watcher = watch(this.#opts.certDir, { ignoreInitial: true, depth: 3, followSymlinks: true })
      this.#watcher.on('all', () => this.#schedule())
      this.#watcher.on('raw', () => this.#schedule())
      this.#watcher.on('error', (err) => this.#opts.log.warn({ err }, 'certificate file watching failed; the periodic re-read still runs'))
      await new Promise<void>((resolve) => this.#watcher!.once('ready', resolve))
    }
    const resync = this.#opts.resyncMs ?? 60_000
    if (resync > 0) this.#resync = setInterval(() => void this.reload('resync'), resync).unref()
  }

  /** Makes the set of identities exactly `identities`; resolves when every new one had its first attempt. */
  async sync(identities: Iterable<string>): Promise<void> {
    const want = new Set(identities)
    for (const [id, slot] of this.#slots) {
      if (want.has(id)) continue
      clearTimeout(slot.timer)
      this.#slots.delete(id)
      this.#byServerName.delete(serverName(id)!)
      // Anyone waiting in ensure() gets an answer (no certificate) instead of waiting forever.
      slot.settleFirst()
    }
    const fresh: Slot[] = []
    for (const id of want) {
      if (this.#slots.has(id)) continue
      const sni = serverName(id)
      if (!sni || parseWorkloadId(id)?.trustDomain !== this.#opts.trustDomain) throw new CertInvalidError(id, `not a workload SPIFFE ID in trust domain ${this.#opts.trustDomain}`)
      let settleFirst!: () => void
      const first = new Promise<void>((resolve) => { settleFirst = resolve })
      const slot: Slot = { identity: id, state: 'Initializing', failures: 0, first, settleFirst }
      this.#slots.set(id, slot)
      this.#byServerName.set(sni, id)
      fresh.push(slot)
    }
    await Promise.all(fresh.map((s) => this.#refresh(s, 'issue')))
  }

  /** The context to serve for a TLS server name (SNI), if that identity is local and Available. */
  contextForServerName(name: string): SecureContext | undefined {
    const id = this.#byServerName.get(name)
    return id === undefined ? undefined : this.contextFor(id)
  }

  contextFor(identity: string): SecureContext | undefined {
    const s = this.#slots.get(identity)
    return s?.state === 'Available' ? s.current!.context : undefined
  }

  /**
   * The context for an identity, waiting only if its very first certificate is still being
   * issued: the one time issuance may sit on the accept path.
   */
  async ensure(identity: string): Promise<SecureContext> {
    const s = this.#slots.get(identity)
    if (!s) throw new CertUnavailableError(identity, 'not a local workload identity')
    if (s.state === 'Initializing') await s.first
    const ctx = this.contextFor(identity)
    if (!ctx) throw new CertUnavailableError(identity, s.lastError ?? 'no valid certificate')
    return ctx
  }

  /**
   * The leaves in force (Available identities) with their key material, and the bundle PEM
   * they were checked against: what the primary posts to worker threads. Never logged.
   */
  leaves(): { readonly leaves: LeafPost[]; readonly bundlePem: string } {
    const leaves: LeafPost[] = []
    for (const s of this.#slots.values()) if (s.state === 'Available') leaves.push({ identity: s.identity, material: s.current!.material })
    return { leaves, bundlePem: this.#bundle?.pem ?? '' }
  }

  /** Trust for verifying peers: our trust domain and the bundle's roots. */
  trust(): Omit<TrustPolicy, 'nodesOf'> {
    return { trustDomain: this.#opts.trustDomain, roots: this.#bundle?.roots ?? [] }
  }

  /** True when every identity has a certificate (vacuously true with none). */
  get ready(): boolean {
    for (const s of this.#slots.values()) if (s.state !== 'Available') return false
    return true
  }

  views(): CertView[] {
    return [...this.#slots.values()].sort((a, b) => (a.identity < b.identity ? -1 : 1)).map((s) => viewOf(s))
  }

  /** For /certs: where certificates come from. */
  source(): Record<string, unknown> {
    return {
      mode: this.#opts.mode,
      certDir: this.#opts.certDir,
      bundle: this.#bundle
        ? { file: this.#bundle.file, roots: this.#bundle.roots.map((r) => ({ subject: oneLine(r.subject), serial: r.serialNumber.toLowerCase(), notAfter: r.validToDate.toISOString(), sha256: r.fingerprint256 })) }
        : null,
      ...(this.#opts.mode === 'ca'
        ? { nodeCa: this.#issuer ? { subject: oneLine(this.#issuer.certificate.subject), serial: this.#issuer.certificate.serialNumber.toLowerCase(), notAfter: this.#issuer.certificate.validToDate.toISOString() } : null }
        : {}),
      lastError: this.#trustError?.message ?? null,
    }
  }

  /** Re-read the bundle, the node CA and (file mode) every identity's files. SIGHUP, events and resync. */
  reload(reason: string): Promise<void> {
    if (this.#closed) return Promise.resolve()
    if (this.#reloading) {
      this.#again = true
      return this.#reloading
    }
    this.#reloading = (async () => {
      do {
        this.#again = false
        const changed = await this.#loadTrust(reason, this.#slots.size)
        // The same trust problem again, from a watcher firing on a dir that is not there:
        // nothing new to try, and each identity would log its failure again.
        if (!this.#repeatedTrustError) await Promise.all([...this.#slots.values()].map((s) => this.#refresh(s, changed ? 'issue' : 'files')))
      } while (this.#again && !this.#closed)
    })().finally(() => { this.#reloading = undefined })
    return this.#reloading
  }

  async close(): Promise<void> {
    this.#closed = true
    clearTimeout(this.#debounce)
    clearInterval(this.#resync)
    for (const s of this.#slots.values()) {
      clearTimeout(s.timer)
      s.settleFirst()
    }
    await this.#watcher?.close()
    await this.#reloading
  }

  #schedule(): void {
    if (this.#closed) return
    clearTimeout(this.#debounce)
    this.#debounce = setTimeout(() => void this.reload('watch'), 50)
  }

  /** Loads bundle and (CA mode) node CA if their bytes changed. True when either was replaced. */
  async #loadTrust(reason: string, needed: number): Promise<boolean> {
    const log = this.#opts.log
    let changed = false
    try {
      // Both candidates are read and checked against each other before either is committed:
      // a bundle that does not hold the node CA's root must not replace the one in force.
      const loaded = await loadBundle(bundlePath(this.#opts.certDir))
      const bundle = loaded.hash === this.#bundle?.hash ? this.#bundle : loaded
      let issuer = this.#issuer
      if (this.#opts.mode === 'ca') {
        const candidate = await NodeIssuer.load(this.#opts.certDir, this.#opts.trustDomain, this.#opts.node)
        if (!bundle.roots.some((r) => candidate.certificate.checkIssued(r) && candidate.certificate.verify(r.publicKey))) {
          throw new CertFileError(join(this.#opts.certDir, 'ca-cert.pem'), `is not signed by any root of ${bundle.file}`)
        }
        if (candidate.fingerprint !== issuer?.fingerprint) issuer = candidate
      }
      if (bundle !== this.#bundle) {
        log.info({ reason, roots: bundle.roots.length, file: bundle.file }, this.#bundle ? 'trust bundle replaced' : 'trust bundle loaded')
        this.#bundle = bundle
        changed = true
      }
      if (issuer !== this.#issuer) {
        log.info({ reason, node: this.#opts.node, notAfter: issuer!.certificate.validToDate.toISOString() }, 'node CA loaded')
        this.#issuer = issuer
        changed = true
      }
      this.#trustError = undefined
      this.#repeatedTrustError = false
      this.emit('reloaded', reason, undefined)
    } catch (err) {
      // Keep what is in force: a half-copied bundle or CA must not take identities away.
      // A watcher fires again and again on a cert dir that does not exist yet: the same
      // problem is logged once, until it changes or an operator asks (start, SIGHUP).
      const repeated = reason === 'watch' && this.#trustError?.message === (err as Error).message
      this.#repeatedTrustError = repeated
      this.#trustError = err as Error
      // With no local workload nothing needs them yet: a warning, not an error.
      log[repeated ? 'debug' : needed > 0 ? 'error' : 'warn']({ reason, code: (err as { code?: string }).code, error: (err as Error).message }, 'certificate files rejected; the last good ones stay in force')
      this.emit('reloaded', reason, err as Error)
    }
    return changed
  }

  /**
   * One attempt to give a slot a (new) certificate. `issue`: mint (CA mode) or read files;
   * `files`: file mode re-reads, CA mode keeps its schedule. Never throws; attempts on a
   * slot do not overlap.
   */
  #refresh(slot: Slot, why: 'issue' | 'files' | 'renew'): Promise<void> {
    if (this.#opts.mode === 'ca' && why === 'files' && slot.state === 'Available') return Promise.resolve()
    const live = (): boolean => !this.#closed && this.#slots.get(slot.identity) === slot
    const run = async (): Promise<void> => {
      try {
        if (!live()) return
        const material = await this.#obtain(slot.identity)
        // The identity may have left the policy (or the manager closed) while minting.
        if (!live()) return
        const hash = createHash('sha256').update(material.certPem).update(material.chainPem).update(material.keyPem).digest('hex')
        if (slot.state === 'Available' && slot.current?.hash === hash && slot.current.bundleHash === this.#bundle?.hash) {
          // The same good bytes again (e.g. files restored after a bad swap): nothing wrong any more.
          slot.failures = 0
          delete slot.lastError
          return this.#arm(slot)
        }
        this.#publish(slot, material, hash)
      } catch (err) {
        if (live()) this.#failed(slot, err as Error)
      } finally {
        slot.settleFirst()
      }
    }
    const p = (slot.busy ?? Promise.resolve()).then(run)
    slot.busy = p
    return p
  }

  async #obtain(identity: string): Promise<LeafMaterial> {
    if (this.#opts.mode === 'ca') {
      if (!this.#issuer) throw new CertUnavailableError(identity, `no node CA: ${this.#trustError?.message ?? 'not loaded'}`)
      return this.#issuer.mint(identity, this.#opts.leafTtlMs ?? DEFAULT_LEAF_TTL_MS)
    }
    const dir = fileModeDir(this.#opts.certDir, identity)
    const read = (name: string, optional = false): Promise<string> => readFile(join(dir, name), 'utf8').catch((err: NodeJS.ErrnoException) => {
      if (optional && err.code === 'ENOENT') return ''
      throw new CertFileError(join(dir, name), `cannot read: ${err.code ?? err.message}`, { cause: err })
    })
    // All three are read, and the first missing one in this order is the error, whichever
    // read fails first: the message must not depend on timing.
    const [cert, key, chain] = await Promise.allSettled([read('cert.pem'), read('key.pem'), read('chain.pem', true)])
    for (const r of [cert, key, chain]) if (r.status === 'rejected') throw r.reason
    return { certPem: (cert as PromiseFulfilledResult<string>).value, keyPem: (key as PromiseFulfilledResult<string>).value, chainPem: (chain as PromiseFulfilledResult<string>).value }
  }

  /** Validate, then swap. Throws CertInvalidError (the slot keeps its last good certificate). */
  #publish(slot: Slot, m: LeafMaterial, hash: string): void {
    const where = this.#opts.mode === 'file' ? fileModeDir(this.#opts.certDir, slot.identity) : slot.identity
    const bundle = this.#bundle
    if (!bundle) throw new CertUnavailableError(slot.identity, `no trust bundle: ${this.#trustError?.message ?? 'not loaded'}`)
    const certs = [...parseCertificates(m.certPem, `${where}/cert.pem`), ...parseCertificates(m.chainPem, `${where}/chain.pem`)]
    const node = this.#opts.node
    const verdict = verifyPeer(certs, {
      trustDomain: this.#opts.trustDomain,
      roots: bundle.roots,
      // Our own leaves must come from our own node CA, exactly as peers will check.
      ...(this.#opts.mode === 'ca' ? { nodesOf: () => new Set([node]) } : {}),
    }, { expected: slot.identity })
    if (!verdict.ok) throw new CertInvalidError(where, `${verdict.message} (${verdict.reason})`)
    let keyMatches: boolean
    try {
      keyMatches = verdict.leaf.checkPrivateKey(createPrivateKey(m.keyPem))
    } catch (err) {
      throw new CertInvalidError(where, 'the private key does not parse', { cause: err })
    }
    if (!keyMatches) throw new CertInvalidError(where, 'the private key does not belong to the certificate')
    const context = leafContext(m, bundle.pem)
    const leaf = verdict.leaf
    slot.current = {
      at: Date.now(),
      bundleHash: bundle.hash,
      serial: leaf.serialNumber.toLowerCase(), notBefore: leaf.validFromDate, notAfter: leaf.validToDate,
      issuer: oneLine(leaf.issuer), context, material: m, hash,
    }
    slot.state = 'Available'
    slot.failures = 0
    delete slot.lastError
    this.#arm(slot)
    const view = viewOf(slot)
    this.#opts.log.info({ identity: slot.identity, serial: view.serial, notAfter: view.notAfter, nextRenewal: view.nextRenewal ?? null }, 'certificate published')
    this.emit('published', slot.identity, view)
  }

  #failed(slot: Slot, err: Error): void {
    slot.failures++
    slot.lastError = err.message
    const expired = !slot.current || Date.now() >= slot.current.notAfter.getTime()
    if (expired) this.#unavailable(slot, err.message)
    // Exponential backoff with ±10% jitter; the last good certificate serves meanwhile.
    const backoff = Math.min(MAX_BACKOFF_MS, 1000 * 2 ** Math.min(slot.failures - 1, 20)) * (0.9 + Math.random() * 0.2)
    this.#opts.log.error({ identity: slot.identity, failures: slot.failures, retryInMs: Math.round(backoff), code: (err as { code?: string }).code, error: err.message }, expired ? 'no valid certificate for identity' : 'certificate renewal failed; the current certificate stays in force')
    this.#arm(slot, Date.now() + backoff)
  }

  #unavailable(slot: Slot, reason: string): void {
    if (slot.state === 'Unavailable') return
    // The expired certificate's serial and validity stay visible (/certs, the expiry gauge
    // goes negative); only its context stops being served.
    slot.state = 'Unavailable'
    this.emit('unavailable', slot.identity, reason)
  }

  /**
   * One timer per slot: the renewal (CA mode: at 50% of the lifetime ±10%), a retry after a
   * failure, or the expiry of the current certificate, whichever comes first.
   */
  #arm(slot: Slot, retryAt?: number): void {
    delete slot.nextRenewal
    const cur = slot.state === 'Available' ? slot.current : undefined
    let at = retryAt ?? Number.POSITIVE_INFINITY
    if (retryAt !== undefined) {
      slot.nextRenewal = new Date(retryAt)
    } else if (cur && this.#opts.mode === 'ca') {
      // Half of the remaining lifetime ±10%, and never sooner than a second: a leaf capped
      // by an expiring node CA must not renew in a tight loop.
      at = cur.at + Math.max(1000, (cur.notAfter.getTime() - cur.at) * (0.4 + Math.random() * 0.2))
      slot.nextRenewal = new Date(at)
    }
    if (cur) at = Math.min(at, cur.notAfter.getTime())
    if (Number.isFinite(at)) slot.dueAt = at
    else delete slot.dueAt
    this.#wake(slot)
  }

  /** Sets the slot's one timer for `dueAt`. libuv may fire a little early: re-arm to the same time then. */
  #wake(slot: Slot): void {
    clearTimeout(slot.timer)
    const at = slot.dueAt
    if (at === undefined || this.#closed) return
    slot.timer = setTimeout(() => {
      if (Date.now() < at) return this.#wake(slot)
      delete slot.dueAt
      if (slot.state === 'Available' && slot.current && Date.now() >= slot.current.notAfter.getTime()) this.#unavailable(slot, 'the certificate expired')
      void this.#refresh(slot, 'renew')
    }, Math.min(Math.max(0, at - Date.now()), MAX_TIMER_MS)).unref()
  }
}

/** File mode: where an external issuer writes an identity's cert.pem, key.pem and chain.pem. */
export function fileModeDir(certDir: string, identity: string): string {
  const id = parseWorkloadId(identity)
  if (!id) throw new CertInvalidError(identity, 'not a workload SPIFFE ID')
  return join(certDir, 'workloads', id.namespace, id.serviceAccount)
}

function viewOf(s: Slot): CertView {
  const c = s.current
  return {
    identity: s.identity,
    state: s.state,
    ...(c ? { serial: c.serial, notBefore: c.notBefore.toISOString(), notAfter: c.notAfter.toISOString(), issuer: c.issuer } : {}),
    ...(s.nextRenewal ? { nextRenewal: s.nextRenewal.toISOString() } : {}),
    ...(s.lastError ? { lastError: s.lastError } : {}),
  }
}

function oneLine(dn: string): string {
  return dn.split('\n').join(', ')
}
