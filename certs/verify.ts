// Peer verification, in one place, for both sides of every mTLS connection and for our own
// certificates before they are published:
//   1. the chain leads to a root of the trust bundle (signatures, issuer names, CA flags);
//   2. the leaf has exactly one URI SAN, a workload SPIFFE ID in our trust domain;
//   3. every certificate on the path is within its validity period, and every CA's
//      basicConstraints pathLen holds (a pathLen-0 node CA cannot vouch for a sub-CA);
//   4. the ID is the one expected (client side: the destination policy names);
//   5. node binding: the intermediate that issued the leaf is the CA of a node that policy
//      says hosts a workload with that ID, so a compromised host cannot mint other hosts'
//      identities.
// Verdicts carry a stable reason (a metric label) and a message that never includes a
// certificate body.
import type { X509Certificate } from 'node:crypto'
import { parseNodeId, parseWorkloadId } from './spiffe.ts'
import { x509 } from './x509.ts'

export const REJECT_REASONS = ['no_certificate', 'untrusted', 'expired', 'not_yet_valid', 'bad_spiffe_id', 'foreign_trust_domain', 'wrong_identity', 'unknown_identity', 'wrong_node'] as const
export type RejectReason = (typeof REJECT_REASONS)[number]

export interface TrustPolicy {
  readonly trustDomain: string
  readonly roots: readonly X509Certificate[]
  /**
   * The nodes policy says host workloads with an identity. Absent: node binding is not
   * checked (file mode, where an external issuer has no per-node intermediates).
   */
  readonly nodesOf?: (identity: string) => ReadonlySet<string> | undefined
}

export type PeerVerdict =
  | { readonly ok: true; readonly identity: string; readonly node?: string; readonly leaf: X509Certificate }
  | { readonly ok: false; readonly reason: RejectReason; readonly message: string }

const MAX_DEPTH = 4

export interface VerifyOptions {
  /** The SPIFFE ID the peer must have (the client checking a server). */
  readonly expected?: string
  /** What the leaf is used for here; an extended key usage, when present, must allow it. */
  readonly usage?: 'serverAuth' | 'clientAuth'
  readonly now?: Date
}

const EKU_OID = { serverAuth: '1.3.6.1.5.5.7.3.1', clientAuth: '1.3.6.1.5.5.7.3.2' } as const

export function verifyPeer(chain: readonly X509Certificate[], trust: TrustPolicy, opts: VerifyOptions = {}): PeerVerdict {
  const reject = (reason: RejectReason, message: string): PeerVerdict => ({ ok: false, reason, message })
  const leaf = chain[0]
  if (!leaf) return reject('no_certificate', 'the peer presented no certificate')

  const uris = uriSans(leaf)
  if (uris.length !== 1) return reject('bad_spiffe_id', `the leaf has ${uris.length} URI SANs, expected exactly one SPIFFE ID`)
  const identity = uris[0]!
  const id = parseWorkloadId(identity)
  if (!id) return reject('bad_spiffe_id', `${identity} is not a workload SPIFFE ID (spiffe://<td>/ns/<ns>/sa/<sa>)`)
  if (id.trustDomain !== trust.trustDomain) return reject('foreign_trust_domain', `${identity} is not in trust domain ${trust.trustDomain}`)
  if (leaf.ca) return reject('untrusted', `${identity}: the leaf is a CA certificate`)
  if (opts.usage && leaf.keyUsage && !leaf.keyUsage.includes(EKU_OID[opts.usage])) return reject('untrusted', `${identity}: the leaf's extended key usage does not allow ${opts.usage}`)

  // Build the path upwards: each step is issued by a root of the bundle or by a CA in the
  // presented chain, and signed by it.
  const path: X509Certificate[] = [leaf]
  const intermediates = chain.slice(1)
  for (;;) {
    const cur = path[path.length - 1]!
    const root = trust.roots.find((r) => issued(r, cur))
    if (root) {
      path.push(root)
      break
    }
    const next = intermediates.find((c) => c.ca && !path.includes(c) && issued(c, cur))
    if (!next || path.length >= MAX_DEPTH) return reject('untrusted', `${identity}: the chain does not lead to a root of the trust bundle`)
    path.push(next)
  }

  // pathLen: a CA at path[i] has i - 1 CAs below it (the leaf is path[0]).
  for (let i = 2; i < path.length; i++) {
    const limit = pathLenOf(path[i]!)
    if (limit !== undefined && i - 1 > limit) return reject('untrusted', `${identity}: CA ${oneLine(path[i]!.subject)} allows ${limit} CA${limit === 1 ? '' : 's'} below it, the chain has ${i - 1}`)
  }

  const now = opts.now ?? new Date()
  for (const c of path) {
    if (now < c.validFromDate) return reject('not_yet_valid', `${identity}: ${c === leaf ? 'the leaf' : `CA ${oneLine(c.subject)}`} is not valid before ${c.validFromDate.toISOString()}`)
    if (now > c.validToDate) return reject('expired', `${identity}: ${c === leaf ? 'the leaf' : `CA ${oneLine(c.subject)}`} expired at ${c.validToDate.toISOString()}`)
  }

  if (opts.expected !== undefined && identity !== opts.expected) return reject('wrong_identity', `the peer is ${identity}, expected ${opts.expected}`)

  if (!trust.nodesOf) return { ok: true, identity, leaf }
  const hosts = trust.nodesOf(identity)
  if (!hosts || hosts.size === 0) return reject('unknown_identity', `${identity}: policy has no workload with this identity`)
  // Exactly leaf → node CA → root: a node CA is the only CA between a leaf and the root.
  const node = path.length === 3 ? nodeOf(path[1]!, trust.trustDomain) : undefined
  if (node === undefined) return reject('wrong_node', `${identity}: the leaf was not issued by a hostmesh node CA directly under a root`)
  if (!hosts.has(node)) return reject('wrong_node', `${identity} was issued by node ${node}'s CA, but policy places it on ${[...hosts].sort().join(', ')}`)
  return { ok: true, identity, node, leaf }
}

// CA certificates are few (roots, node CAs) and seen on every handshake: decode each once.
const pathLens = new Map<string, number | undefined>()

/** basicConstraints pathLenConstraint of a CA certificate; undefined when unlimited. */
function pathLenOf(ca: X509Certificate): number | undefined {
  const key = ca.fingerprint256
  if (pathLens.has(key)) return pathLens.get(key)
  const bc = new x509.X509Certificate(ca.raw).getExtension(x509.BasicConstraintsExtension)
  if (pathLens.size >= 1024) pathLens.clear()
  pathLens.set(key, bc?.pathLength)
  return bc?.pathLength
}

function oneLine(dn: string | undefined): string {
  return (dn ?? '').split('\n').join(', ')
}

function issued(issuer: X509Certificate, subject: X509Certificate): boolean {
  return subject.checkIssued(issuer) && subject.verify(issuer.publicKey)
}

function nodeOf(ca: X509Certificate, trustDomain: string): string | undefined {
  const uris = uriSans(ca)
  const n = uris.length === 1 ? parseNodeId(uris[0]!) : undefined
  return n && n.trustDomain === trustDomain ? n.node : undefined
}

/** Every URI SAN of a certificate. */
export function uriSans(cert: X509Certificate): string[] {
  return parseSanString(cert.subjectAltName) ?? uriSansFromDer(cert)
}

/**
 * node's subjectAltName string, split into URI values: `TYPE:value` entries joined by ", ",
 * where a value with a comma, quote or other unsafe character is printed as a JSON string
 * (since CVE-2021-44532). Parsing it is ~20x cheaper than decoding the DER with
 * @peculiar/x509, which matters once per handshake. Anything unexpected returns undefined
 * and the caller decodes the DER instead.
 */
export function parseSanString(san: string | undefined): string[] | undefined {
  if (san === undefined) return []
  const uris: string[] = []
  let i = 0
  while (i < san.length) {
    const colon = san.indexOf(':', i)
    if (colon < 0) return undefined
    const type = san.slice(i, colon)
    let value: string
    if (san[colon + 1] === '"') {
      const m = /^"(?:[^"\\]|\\.)*"/.exec(san.slice(colon + 1))
      if (!m) return undefined
      try {
        value = JSON.parse(m[0]) as string
      } catch {
        return undefined
      }
      i = colon + 1 + m[0].length
    } else {
      const end = san.indexOf(', ', colon + 1)
      value = san.slice(colon + 1, end < 0 ? san.length : end)
      i = end < 0 ? san.length : end
    }
    if (type === 'URI') uris.push(value)
    if (i < san.length) {
      if (!san.startsWith(', ', i)) return undefined
      i += 2
    }
  }
  return uris
}

function uriSansFromDer(cert: X509Certificate): string[] {
  const ext = new x509.X509Certificate(cert.raw).getExtension(x509.SubjectAlternativeNameExtension)
  return ext ? ext.names.items.filter((n) => n.type === 'url').map((n) => n.value) : []
}
