// Connects the certificate manager to the rest of the daemon: the identities to hold come
// from the policy snapshot (local workloads), node binding for peer checks comes from the
// snapshot too (which nodes run each identity), readiness waits for every identity's first
// certificate, and metrics expose expiry and state per identity.
import { Gauge, type Registry } from 'prom-client'
import { CertManager } from '../../certs/manager.ts'
import { PeerVerifier } from '../../certs/tls.ts'
import type { Snapshot } from '../../policy/snapshot.ts'
import type { NodeConfig } from '../config/schema.ts'
import type { Logger } from '../../base/logger.ts'
import type { Metrics } from '../metrics/registry.ts'
import type { Readiness } from './readiness.ts'
import { nodesByIdentity } from './placement.ts'

export interface Certificates {
  readonly manager: CertManager
  readonly verifier: PeerVerifier
  /** Holds exactly the identities of the snapshot's local workloads, and learns its node placement. */
  follow(snapshot: Snapshot | undefined): Promise<void>
}

export function localIdentities(s: Snapshot | undefined): Set<string> {
  return new Set(s?.localWorkloads.map((l) => l.workload.identity) ?? [])
}

export function createCertificates(config: NodeConfig, metrics: Metrics, log: Logger, readiness: Readiness): Certificates {
  const manager = new CertManager({
    mode: config.certificates.mode,
    certDir: config.certDir,
    trustDomain: config.trustDomain,
    node: config.node.name,
    leafTtlMs: config.certificates.leafTtl,
    log,
  })
  let placement = new Map<string, Set<string>>()
  // Node binding needs per-node CAs; in file mode an external issuer has none to check.
  const bind = config.certificates.mode === 'ca'
  const verifier = new PeerVerifier(() => ({ ...manager.trust(), ...(bind ? { nodesOf: (id: string) => placement.get(id) } : {}) }), log, metrics.registry)
  // Ready once a policy says which identities are local and each has a certificate.
  let policyLoaded = false
  const markIfReady = (): void => {
    if (policyLoaded && manager.ready) readiness.markReady('certificates')
  }
  manager.on('published', markIfReady)
  registerCertMetrics(manager, metrics.registry)
  // Calls are serialised and each run uses the newest snapshot, so a policy change that
  // lands while certificates are still starting is not lost.
  let started = false
  let latest: Snapshot | undefined
  let queue: Promise<void> = Promise.resolve()
  return {
    manager,
    verifier,
    follow(snapshot) {
      latest = snapshot
      const run = queue.then(async () => {
        const s = latest
        placement = nodesByIdentity(s)
        policyLoaded ||= s !== undefined
        const ids = localIdentities(s)
        if (started) await manager.sync(ids)
        else {
          started = true
          await manager.start(ids)
        }
        markIfReady()
      })
      queue = run.catch(() => undefined)
      return run
    },
  }
}

function registerCertMetrics(manager: CertManager, registry: Registry): void {
  new Gauge({
    name: 'hostmesh_cert_expiry_seconds',
    help: 'Seconds until the certificate in force for a local workload identity expires (as Istio\'s *_cert_expiry_seconds).',
    labelNames: ['identity'],
    registers: [registry],
    collect() {
      this.reset()
      const now = Date.now()
      for (const v of manager.views()) if (v.notAfter) this.set({ identity: v.identity }, Math.round((Date.parse(v.notAfter) - now) / 1000))
    },
  })
  new Gauge({
    name: 'hostmesh_cert_state',
    help: 'Certificate state per local workload identity: 1 for the current state (Initializing, Available, Unavailable).',
    labelNames: ['identity', 'state'],
    registers: [registry],
    collect() {
      this.reset()
      for (const v of manager.views()) for (const state of ['Initializing', 'Available', 'Unavailable']) this.set({ identity: v.identity, state }, v.state === state ? 1 : 0)
    },
  })
}
