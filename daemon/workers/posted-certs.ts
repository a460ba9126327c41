// A worker thread's certificates: the leaves the primary minted (or read) and posted, with the
// trust bundle they were checked against. The worker builds its own TLS contexts from them
// (a SecureContext cannot cross threads) and can serve and dial as each local identity, but it
// never holds the node CA key: the narrow capability docs/workers.md describes.
import type { SecureContext } from 'node:tls'
import type { Registry } from 'prom-client'
import type { Logger } from '../../base/logger.ts'
import { CertUnavailableError } from '../../certs/errors.ts'
import { leafContext } from '../../certs/leaf-context.ts'
import type { LeafContexts, LeafPost } from '../../certs/manager.ts'
import { parseCertificates } from '../../certs/pem.ts'
import { serverName } from '../../certs/spiffe.ts'
import { PeerVerifier } from '../../certs/tls.ts'
import type { X509Certificate } from 'node:crypto'

/** What the primary posts: every Available leaf, and the bundle PEM. */
export interface CertsPost {
  readonly leaves: readonly LeafPost[]
  readonly bundlePem: string
}

/**
 * How long a dial as an identity waits for its first leaf to be posted: a policy that adds a
 * workload reaches the worker before the primary has minted its certificate.
 */
const FIRST_LEAF_WAIT_MS = 10_000

export class PostedCertificates implements LeafContexts {
  readonly verifier: PeerVerifier
  #contexts = new Map<string, SecureContext>()
  #byServerName = new Map<string, SecureContext>()
  #roots: readonly X509Certificate[] = []
  /** Serials already built into a context: an unchanged leaf keeps its context (and its TLS session cache). */
  #built = new Map<string, { readonly key: string; readonly context: SecureContext }>()
  readonly #waiting = new Map<string, (() => void)[]>()
  readonly #waitMs: number

  constructor(trustDomain: string, nodesOf: ((identity: string) => ReadonlySet<string> | undefined) | undefined, log: Logger, registry: Registry, firstLeafWaitMs = FIRST_LEAF_WAIT_MS) {
    this.#waitMs = firstLeafWaitMs
    this.verifier = new PeerVerifier(() => ({ trustDomain, roots: this.#roots, ...(nodesOf ? { nodesOf } : {}) }), log, registry)
  }

  /** Replaces every leaf and the bundle with the posted ones. */
  update(post: CertsPost): void {
    this.#roots = post.bundlePem ? parseCertificates(post.bundlePem, 'bundle.pem (posted by the primary)') : []
    const contexts = new Map<string, SecureContext>()
    const byName = new Map<string, SecureContext>()
    const built = new Map<string, { readonly key: string; readonly context: SecureContext }>()
    for (const { identity, material } of post.leaves) {
      const key = material.certPem + material.chainPem + post.bundlePem
      const prior = this.#built.get(identity)
      const context = prior?.key === key ? prior.context : leafContext(material, post.bundlePem)
      built.set(identity, { key, context })
      contexts.set(identity, context)
      const sni = serverName(identity)
      if (sni !== undefined) byName.set(sni, context)
    }
    this.#contexts = contexts
    this.#byServerName = byName
    this.#built = built
    for (const identity of contexts.keys()) for (const wake of this.#waiting.get(identity)?.splice(0) ?? []) wake()
  }

  contextForServerName(name: string): SecureContext | undefined {
    return this.#byServerName.get(name)
  }

  async ensure(identity: string): Promise<SecureContext> {
    const now = this.#contexts.get(identity)
    if (now) return now
    await new Promise<void>((resolve) => {
      const list = this.#waiting.get(identity) ?? []
      this.#waiting.set(identity, list)
      const timer = setTimeout(done, this.#waitMs)
      list.push(done)
      function done(): void {
        clearTimeout(timer)
        const i = list.indexOf(done)
        if (i !== -1) list.splice(i, 1)
        resolve()
      }
    })
    const ctx = this.#contexts.get(identity)
    if (!ctx) throw new CertUnavailableError(identity, 'no certificate posted to this worker')
    return ctx
  }
}
