// The trust bundle: every root a peer's chain may lead to. It may hold several roots, so a
// root can be rotated (add the new root everywhere, move nodes over, then drop the old one).
// A bundle is validated whole before it replaces the one in force.
import { createHash, type X509Certificate } from 'node:crypto'
import { NODE_FILES, readOrExplain } from './ca-ops.ts'
import { CertFileError } from './errors.ts'
import { parseCertificates } from './pem.ts'
import { join } from 'node:path'

export interface TrustBundle {
  readonly file: string
  readonly roots: readonly X509Certificate[]
  /** The roots as PEM, for node:tls `ca`. */
  readonly pem: string
  /** sha256 of the file's bytes: "did it change?" */
  readonly hash: string
}

export function bundlePath(certDir: string): string {
  return join(certDir, NODE_FILES.bundle)
}

export async function loadBundle(file: string, now = new Date()): Promise<TrustBundle> {
  const text = await readOrExplain(file)
  return parseBundle(text, file, now)
}

export function parseBundle(text: string, file: string, now = new Date()): TrustBundle {
  const roots = parseCertificates(text, file)
  if (roots.length === 0) throw new CertFileError(file, 'holds no certificate; copy bundle.pem from `hostmesh ca node`')
  for (const [i, r] of roots.entries()) {
    const where = `certificate ${i + 1} (${r.subject.replace(/\n/g, ', ')})`
    if (!r.ca) throw new CertFileError(file, `${where} is not a CA certificate`)
    if (!r.checkIssued(r) || !r.verify(r.publicKey)) throw new CertFileError(file, `${where} is not a self-signed root`)
  }
  if (!roots.some((r) => now >= r.validFromDate && now <= r.validToDate)) throw new CertFileError(file, 'no root in the bundle is currently valid')
  return { file, roots, pem: roots.map((r) => r.toString()).join(''), hash: createHash('sha256').update(text).digest('hex') }
}
