// The demo's cast, named once here and looked up in the compiled example policy: uids, nodes,
// addresses, ports and route weights all come from policy/examples, so the demo follows them
// when they change (and says clearly what it misses when a name it needs is gone).
import type { Endpoint, PortRoute, Snapshot, WorkloadInfo } from '../../policy/snapshot.ts'

/** The one thing the examples lack: a Service over both payments versions with no route, so
 * stopping one endpoint shows failover (with the TCPRoute, each backend has one endpoint). */
export const DEMO_POLICY_FILE = '90-demo-failover.yaml'
export const DEMO_POLICY = `# Added by scripts/demo.ts, in its temporary copy of policy/examples only.
apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: ledger-all, namespace: shop}
spec:
  addresses: [10.96.0.50]
  ports: [{name: ledger, port: 7000, protocol: tcp}]
  selector: {app: payments}
`

const CALLER = 'shop/checkout'
/** Not allowed by AuthorizationPolicy shop/payments-from-checkout (40-policies.yaml). */
const INTRUDER = 'shop/fraud'
const CANARY = 'shop/payments:7000'
const FAILOVER = 'shop/ledger-all:7000'
const STOPPED = 'shop/payments-v1'

export interface Backend {
  readonly workload: WorkloadInfo
  readonly port: number
  readonly weight: number
}

export interface Scenario {
  readonly caller: WorkloadInfo
  readonly intruder: WorkloadInfo
  /** The servers the demo starts: every endpoint of the canary's backends. */
  readonly servers: readonly { readonly workload: WorkloadInfo; readonly port: number }[]
  readonly canary: { readonly vip: string; readonly port: number; readonly route: string; readonly backends: readonly Backend[]; readonly totalWeight: number }
  readonly failover: { readonly vip: string; readonly port: number; readonly stopped: WorkloadInfo; readonly survivors: readonly WorkloadInfo[] }
}

export function scenario(snap: Snapshot): Scenario {
  const workload = (key: string): WorkloadInfo => {
    const w = snap.workloads.get(key)
    if (!w) throw new Error(`the demo needs Workload ${key}, which the policy does not have`)
    if (w.match.uid === undefined) throw new Error(`the demo runs Workload ${key} as a host process: it needs a uid match`)
    return w
  }
  const servicePort = (key: string): { vip: string; port: number; endpoints: readonly Endpoint[]; route: PortRoute | undefined } => {
    const sp = snap.servicePorts.get(key)
    const vip = sp && snap.services.get(sp.service)?.addresses.find((a) => !a.includes(':'))
    if (!sp || !vip) throw new Error(`the demo needs Service port ${key} with an IPv4 address, which the policy does not have`)
    return { vip, port: sp.port, endpoints: sp.endpoints, route: sp.route }
  }
  const canary = servicePort(CANARY)
  if (canary.route?.kind !== 'tcp') throw new Error(`the demo needs a TCPRoute on ${CANARY}`)
  const backends = canary.route.backends.backends.map((b) => {
    const eps = snap.servicePorts.get(b.servicePort)?.endpoints ?? []
    if (eps.length !== 1 || !eps[0]!.workload) throw new Error(`the demo needs exactly one mesh workload behind ${b.servicePort}, not ${eps.length}`)
    return { workload: workload(eps[0]!.workload), port: eps[0]!.port, weight: b.weight }
  })
  const failover = servicePort(FAILOVER)
  const stopped = workload(STOPPED)
  const survivors = failover.endpoints.filter((e) => e.workload && e.workload !== STOPPED).map((e) => workload(e.workload!))
  if (!failover.endpoints.some((e) => e.workload === STOPPED) || survivors.length === 0) throw new Error(`the demo needs ${FAILOVER} to have ${STOPPED} and another endpoint`)
  return {
    caller: workload(CALLER),
    intruder: workload(INTRUDER),
    servers: backends.map((b) => ({ workload: b.workload, port: b.port })),
    canary: { vip: canary.vip, port: canary.port, route: canary.route.route, backends, totalWeight: canary.route.backends.total },
    failover: { vip: failover.vip, port: failover.port, stopped, survivors },
  }
}

export function uidOf(w: WorkloadInfo): number {
  return w.match.uid!
}
