// SPIFFE IDs as hostmesh uses them. Workloads: spiffe://<td>/ns/<namespace>/sa/<serviceAccount>.
// Node intermediates carry spiffe://<td>/hostmesh/node/<name> as their URI SAN: that binding
// is what lets a peer check that a leaf was minted by the host policy says runs the workload.
// Pure string functions; this module imports nothing.

export interface WorkloadId {
  readonly trustDomain: string
  readonly namespace: string
  readonly serviceAccount: string
}

// Namespaces and service accounts are DNS labels in policy; the trust domain is a DNS name.
const LABEL = '[a-z0-9](?:[-a-z0-9]{0,61}[a-z0-9])?'
const DOMAIN = `${LABEL}(?:\\.${LABEL})*`
const WORKLOAD_ID = new RegExp(`^spiffe://(${DOMAIN})/ns/(${LABEL})/sa/(${LABEL})$`)
const NODE_ID = new RegExp(`^spiffe://(${DOMAIN})/hostmesh/node/(${DOMAIN})$`)

export function workloadId(trustDomain: string, namespace: string, serviceAccount: string): string {
  return `spiffe://${trustDomain}/ns/${namespace}/sa/${serviceAccount}`
}

/** The parts of a workload SPIFFE ID; undefined for anything else (a node ID, a foreign shape). */
export function parseWorkloadId(uri: string): WorkloadId | undefined {
  const m = WORKLOAD_ID.exec(uri)
  return m ? { trustDomain: m[1]!, namespace: m[2]!, serviceAccount: m[3]! } : undefined
}

export function nodeId(trustDomain: string, node: string): string {
  return `spiffe://${trustDomain}/hostmesh/node/${node}`
}

export function parseNodeId(uri: string): { trustDomain: string; node: string } | undefined {
  const m = NODE_ID.exec(uri)
  return m ? { trustDomain: m[1]!, node: m[2]! } : undefined
}

/** The root CA's own ID: the trust domain with no path, as the X.509-SVID spec allows for signing certificates. */
export function trustDomainId(trustDomain: string): string {
  return `spiffe://${trustDomain}`
}

/**
 * The TLS server name a client sends to reach a workload identity. A SPIFFE URI is not a
 * valid SNI host name, so the identity is spelled as one, in Linkerd's shape:
 * <sa>.<ns>.serviceaccount.identity.<trustDomain>. Labels hold no dots, so it is unambiguous.
 */
export function serverName(id: string): string | undefined {
  const w = parseWorkloadId(id)
  return w ? `${w.serviceAccount}.${w.namespace}.serviceaccount.identity.${w.trustDomain}` : undefined
}
