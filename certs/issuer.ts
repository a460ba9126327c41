// The node's leaf issuer: the only holder of this host's intermediate key inside the daemon.
// Everything else gets the `mint` capability or the certificates it returns, never the key.
import type { X509Certificate } from 'node:crypto'
import { join } from 'node:path'
import { BACKDATE_MS, loadSigningKey, NODE_FILES, readOrExplain } from './ca-ops.ts'
import { CertFileError } from './errors.ts'
import { parseCertificates } from './pem.ts'
import { nodeId, parseWorkloadId } from './spiffe.ts'
import { uriSans } from './verify.ts'
import { authorityKeyId, type Key, leafExtensions, newKeyPair, privateKeyPem, randomSerial, SIGNING, x509 } from './x509.ts'

/** A leaf as minted or read from files: PEM text, not yet validated. */
export interface LeafMaterial {
  readonly certPem: string
  /** Intermediates between the leaf and the bundle's roots (may be empty). */
  readonly chainPem: string
  readonly keyPem: string
}

export class NodeIssuer {
  readonly certificate: X509Certificate
  /** The CA certificate's sha256 fingerprint, so a reload can tell whether it changed. */
  readonly fingerprint: string
  readonly #key: Key
  readonly #issuer: x509.X509Certificate
  readonly #aki: x509.Extension

  private constructor(cert: X509Certificate, key: Key, issuer: x509.X509Certificate, aki: x509.Extension) {
    this.certificate = cert
    this.#key = key
    this.#issuer = issuer
    this.#aki = aki
    this.fingerprint = cert.fingerprint256
  }

  /** Reads `ca-cert.pem` and `ca-key.pem` from certDir and checks they are this node's intermediate. */
  static async load(certDir: string, trustDomain: string, node: string): Promise<NodeIssuer> {
    const certFile = join(certDir, NODE_FILES.cert)
    const text = await readOrExplain(certFile)
    const [cert] = parseCertificates(text, certFile)
    if (!cert) throw new CertFileError(certFile, 'holds no certificate; make one with `hostmesh ca node`')
    if (!cert.ca) throw new CertFileError(certFile, 'is not a CA certificate')
    const want = nodeId(trustDomain, node)
    const have = uriSans(cert)
    if (have.length !== 1 || have[0] !== want) {
      throw new CertFileError(certFile, `is the CA of ${have.join(', ') || 'no hostmesh node'}, but this node is ${want}; copy this host's own ca-cert.pem and ca-key.pem`)
    }
    const key = await loadSigningKey(join(certDir, NODE_FILES.key), cert)
    const issuer = new x509.X509Certificate(cert.raw)
    return new NodeIssuer(cert, key, issuer, await authorityKeyId(issuer))
  }

  /** A fresh P-256 key and a leaf for `identity`, valid `ttlMs` from now (never past the intermediate). */
  async mint(identity: string, ttlMs: number, now = new Date()): Promise<LeafMaterial> {
    if (!parseWorkloadId(identity)) throw new Error(`not a workload SPIFFE ID: ${identity}`)
    const keys = await newKeyPair()
    const notAfter = new Date(Math.min(now.getTime() + ttlMs, this.certificate.validToDate.getTime()))
    const cert = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(),
      subject: '',
      issuer: this.#issuer.subject,
      notBefore: new Date(now.getTime() - BACKDATE_MS),
      notAfter,
      publicKey: keys.publicKey,
      signingKey: this.#key,
      signingAlgorithm: SIGNING,
      extensions: await leafExtensions(keys.publicKey, this.#aki, identity),
    })
    return { certPem: cert.toString('pem') + '\n', chainPem: this.certificate.toString(), keyPem: await privateKeyPem(keys.privateKey) }
  }
}
