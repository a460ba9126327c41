// The capture rules, as a pure function of node config + policy snapshot: the input for
// `iptables-restore --noflush` (and ip6tables-restore) for hostmesh's own nat chains. The
// same snapshot always gives the same text, so applying twice changes nothing, and the
// daemon can compare texts to know whether a sync is needed.
//
//   nat OUTPUT     -p tcp -j HOSTMESH_OUTPUT        (host processes, matched by uid)
//   nat PREROUTING -p tcp -j HOSTMESH_PREROUTING    (containers by source address; inbound)
//   filter OUTPUT  -p tcp --syn -m conntrack --ctstate DNAT -j HOSTMESH_GUARD
//                                                   (first in the chain: the owner guard, below)
//
// HOSTMESH_OUTPUT:     the daemon's own uid and loopback destinations RETURN (loop
//                      avoidance); then one REDIRECT per uid-matched local workload to its
//                      own outbound port.
// HOSTMESH_PREROUTING: the HBONE port RETURNs (never redirected); one REDIRECT per
//                      address-matched local workload to its outbound port; then plaintext
//                      arriving for a local workload's port goes to the inbound plaintext
//                      port (any local address for a host process, its own address for a
//                      container).
// HOSTMESH_GUARD:      a SYN whose NAT (in its conntrack entry) leads to a uid-matched
//                      workload's outbound port, sent by another uid, is refused. NAT is
//                      chosen on a connection's first packet and kept in its entry; a new SYN
//                      that reuses the tuple of an entry the daemon reset within
//                      nf_conntrack_tcp_timeout_close (10 s) keeps the old NAT, and would land
//                      on the old owner's port: it would go out as that workload (docs/capture.md, "The owner guard"). Only an entry that saw
//                      the handshake is kept so (a reset answering a SYN ends its entry). Such a
//                      SYN's state is ESTABLISHED, so the jump must come before any ACCEPT of
//                      established traffic: it is kept first. REDIRECT from OUTPUT rewrites to
//                      loopback, so the reply source is 127.0.0.1 / ::1.
import { isIP } from 'node:net'
import type { Snapshot } from '../../policy/snapshot.ts'

export const CHAIN_OUTPUT = 'HOSTMESH_OUTPUT'
export const CHAIN_PREROUTING = 'HOSTMESH_PREROUTING'
export const CHAIN_GUARD = 'HOSTMESH_GUARD'

export type Table = 'nat' | 'filter'

export interface Jump {
  readonly table: Table
  readonly chain: string
  readonly rule: readonly string[]
  /** The capture rules go after what is there; the guard goes first, and is kept first, so no earlier ACCEPT skips it. */
  readonly first: boolean
}

/**
 * The rules in the built-in chains that send TCP to ours. Added once, checked with -C. In
 * this order: the guard before the capture it guards (removed in the reverse order). Only
 * SYNs of NATed connections go to the guard: the rest of the host's traffic passes it by one
 * rule.
 */
export const JUMPS: readonly Jump[] = [
  { table: 'filter', chain: 'OUTPUT', rule: ['-p', 'tcp', '--syn', '-m', 'conntrack', '--ctstate', 'DNAT', '-j', CHAIN_GUARD], first: true },
  { table: 'nat', chain: 'OUTPUT', rule: ['-p', 'tcp', '-j', CHAIN_OUTPUT], first: false },
  { table: 'nat', chain: 'PREROUTING', rule: ['-p', 'tcp', '-j', CHAIN_PREROUTING], first: false },
]

/** Our chains, by table. */
export const CHAINS: readonly { readonly table: Table; readonly chain: string }[] = [
  { table: 'filter', chain: CHAIN_GUARD },
  { table: 'nat', chain: CHAIN_OUTPUT },
  { table: 'nat', chain: CHAIN_PREROUTING },
]

export type Family = 4 | 6

export interface CaptureInput {
  /** The uid the daemon runs as: its own connections are never captured. */
  readonly daemonUid: number
  readonly inboundPlaintextPort: number
  readonly hbonePort: number
  readonly localWorkloads: Snapshot['localWorkloads']
}

/** The rules' input for a node: its config's ports and the snapshot's local workloads. */
export function captureInput(ports: { readonly inboundPlaintext: number; readonly hbone: number }, snapshot: Pick<Snapshot, 'localWorkloads'>, daemonUid: number): CaptureInput {
  return { daemonUid, inboundPlaintextPort: ports.inboundPlaintext, hbonePort: ports.hbone, localWorkloads: snapshot.localWorkloads }
}

/**
 * Workloads that share the daemon's uid: loop avoidance RETURNs that uid first, so their
 * traffic is never captured. Callers say so loudly.
 */
export function uncapturable(input: CaptureInput): Snapshot['localWorkloads'] {
  return input.localWorkloads.filter((l) => l.workload.match.uid === input.daemonUid)
}

const LOOPBACK: Record<Family, string> = { 4: '127.0.0.0/8', 6: '::1/128' }
/** Where REDIRECT sends a locally generated packet (nf_nat_redirect). */
const REDIRECTED_TO: Record<Family, string> = { 4: '127.0.0.1', 6: '::1' }

/**
 * The outbound redirects in `iptables -S` output of our chains: workload key (the rule's
 * comment) → port. Inbound rules (they have --dport) and the RETURN rules are skipped.
 */
export function outboundRedirects(listing: string): Map<string, number> {
  const out = new Map<string, number>()
  for (const line of listing.split('\n')) {
    if (line.includes('--dport')) continue
    const key = /--comment\s+"?([^"\s]+)"?/.exec(line)?.[1]
    const port = /-j REDIRECT --to-ports (\d+)$/.exec(line.trim())?.[1]
    if (key !== undefined && port !== undefined) out.set(key, Number(port))
  }
  return out
}

export function captureRules(input: CaptureInput, family: Family): string {
  const out: string[] = [
    `-A ${CHAIN_OUTPUT} -m owner --uid-owner ${input.daemonUid} -j RETURN`,
    `-A ${CHAIN_OUTPUT} -d ${LOOPBACK[family]} -j RETURN`,
  ]
  const pre: string[] = [`-A ${CHAIN_PREROUTING} -p tcp --dport ${input.hbonePort} -j RETURN`]
  const inbound: string[] = []
  const guard: string[] = []
  // Sorted by port: the order of the snapshot's list must not change the text.
  for (const { workload: w, outboundPort } of [...input.localWorkloads].sort((a, b) => a.outboundPort - b.outboundPort)) {
    const tag = `-m comment --comment "${w.key}"`
    if (w.match.uid !== undefined) {
      out.push(`-A ${CHAIN_OUTPUT} -p tcp -m owner --uid-owner ${w.match.uid} ${tag} -j REDIRECT --to-ports ${outboundPort}`)
      guard.push(`-A ${CHAIN_GUARD} -p tcp --syn -m conntrack --ctstate DNAT --ctreplsrc ${REDIRECTED_TO[family]} --ctreplsrcport ${outboundPort} -m owner ! --uid-owner ${w.match.uid} ${tag} -j REJECT --reject-with tcp-reset`)
      // A host process listens on every local address (link-local, secondary, ...), not
      // just the ones policy lists: capture its ports on any local destination.
      for (const p of w.ports) inbound.push(`-A ${CHAIN_PREROUTING} -p tcp -m addrtype --dst-type LOCAL --dport ${p.port} ${tag} -j REDIRECT --to-ports ${input.inboundPlaintextPort}`)
    } else {
      if (w.match.address !== undefined && isIP(w.match.address) === family) pre.push(`-A ${CHAIN_PREROUTING} -p tcp -s ${w.match.address} ${tag} -j REDIRECT --to-ports ${outboundPort}`)
      for (const a of w.addresses) {
        if (isIP(a) !== family) continue
        for (const p of w.ports) inbound.push(`-A ${CHAIN_PREROUTING} -p tcp -d ${a} --dport ${p.port} ${tag} -j REDIRECT --to-ports ${input.inboundPlaintextPort}`)
      }
    }
  }
  // Declaring a chain in --noflush mode creates it, or flushes it if it exists: the chain's
  // whole content is replaced in one commit per table. The guard is committed first: a
  // redirect never exists without it.
  return [
    '*filter', `:${CHAIN_GUARD} - [0:0]`, ...guard, 'COMMIT',
    '*nat', `:${CHAIN_OUTPUT} - [0:0]`, `:${CHAIN_PREROUTING} - [0:0]`, ...out, ...pre, ...inbound, 'COMMIT', '',
  ].join('\n')
}

/** What `hostmesh iptables print` shows: both families, and the jumps. */
export function describeRules(input: CaptureInput): string {
  const jumps = JUMPS.map((j) => `#   -t ${j.table} ${j.first ? '-I' : '-A'} ${j.chain}${j.first ? ' 1' : ''} ${j.rule.join(' ')}`).join('\n')
  return [
    '# IPv4: iptables-restore --noflush',
    captureRules(input, 4),
    '# IPv6: ip6tables-restore --noflush',
    captureRules(input, 6),
    '# and in both families, once (checked with -C first):',
    jumps,
    '',
  ].join('\n')
}
