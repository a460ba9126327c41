// The operator's CA commands: `hostmesh ca init` (the mesh root) and `hostmesh ca node` (one
// host's intermediate). They run on an operator's machine, never in the daemon: this is the
// only code that reads the root key.
import { createPrivateKey, type X509Certificate } from 'node:crypto'
import { mkdir, open, readFile, rename, stat, unlink } from 'node:fs/promises'
import { dirname, join } from 'node:path'
import { CertFileError, CertOverwriteError } from './errors.ts'
import { parseCertificates } from './pem.ts'
import { nodeId, trustDomainId } from './spiffe.ts'
import { uriSans } from './verify.ts'
import { caExtensions, importSigningKey, type Key, newKeyPair, privateKeyPem, randomSerial, SIGNING, trustDomainConstraint, x509 } from './x509.ts'

export const ROOT_FILES = { cert: 'root-cert.pem', key: 'root-key.pem', bundle: 'bundle.pem' } as const
export const NODE_FILES = { cert: 'ca-cert.pem', key: 'ca-key.pem', bundle: 'bundle.pem' } as const

const DAY_MS = 86_400_000
/** Certificates start a little in the past, so hosts whose clocks lag accept them at once. */
export const BACKDATE_MS = 60_000

export interface WrittenFile {
  readonly path: string
  readonly mode: number
}

export interface CaResult {
  readonly files: readonly WrittenFile[]
  readonly trustDomain: string
  readonly notAfter: Date
}

export async function initRootCa(opts: { dir: string; trustDomain: string; force?: boolean; now?: Date; validDays?: number }): Promise<CaResult> {
  const now = opts.now ?? new Date()
  const paths = { cert: join(opts.dir, ROOT_FILES.cert), key: join(opts.dir, ROOT_FILES.key), bundle: join(opts.dir, ROOT_FILES.bundle) }
  await refuseOverwrite(Object.values(paths), opts.force)
  const keys = await newKeyPair()
  const notAfter = new Date(now.getTime() + (opts.validDays ?? 3650) * DAY_MS)
  const cert = await x509.X509CertificateGenerator.createSelfSigned({
    serialNumber: randomSerial(),
    name: `CN=hostmesh root CA, O=${opts.trustDomain}`,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter,
    keys,
    signingAlgorithm: SIGNING,
    // pathLen 1: the root signs node intermediates, which sign only leaves.
    extensions: await caExtensions(1, keys.publicKey, trustDomainId(opts.trustDomain)),
  })
  await mkdir(opts.dir, { recursive: true, mode: 0o700 })
  const pem = cert.toString('pem') + '\n'
  const files = await writeAll([
    { path: paths.key, text: await privateKeyPem(keys.privateKey), mode: 0o600 },
    { path: paths.cert, text: pem, mode: 0o644 },
    { path: paths.bundle, text: pem, mode: 0o644 },
  ])
  return { files, trustDomain: opts.trustDomain, notAfter }
}

export async function makeNodeCa(opts: { caDir: string; node: string; outDir: string; force?: boolean; now?: Date; validDays?: number }): Promise<CaResult> {
  const now = opts.now ?? new Date()
  const rootCertFile = join(opts.caDir, ROOT_FILES.cert)
  const [root] = parseCertificates(await readOrExplain(rootCertFile), rootCertFile)
  if (!root) throw new CertFileError(rootCertFile, 'holds no certificate; run `hostmesh ca init` first')
  const trustDomain = rootTrustDomain(root, rootCertFile)
  const rootKeyFile = join(opts.caDir, ROOT_FILES.key)
  const rootKey = await loadSigningKey(rootKeyFile, root)
  const bundleFile = join(opts.caDir, ROOT_FILES.bundle)
  const bundle = await readFile(bundleFile, 'utf8').catch(() => root.toString())
  if (!parseCertificates(bundle, bundleFile).some((c) => c.fingerprint256 === root.fingerprint256)) {
    throw new CertFileError(bundleFile, `does not contain the root ${rootCertFile}; nodes could not verify each other`)
  }

  const paths = { cert: join(opts.outDir, NODE_FILES.cert), key: join(opts.outDir, NODE_FILES.key), bundle: join(opts.outDir, NODE_FILES.bundle) }
  await refuseOverwrite(Object.values(paths), opts.force)
  const keys = await newKeyPair()
  const issuer = new x509.X509Certificate(root.raw)
  const rootEnd = root.validToDate.getTime()
  const notAfter = new Date(Math.min(now.getTime() + (opts.validDays ?? 365) * DAY_MS, rootEnd))
  const cert = await x509.X509CertificateGenerator.create({
    serialNumber: randomSerial(),
    subject: `CN=hostmesh node ${opts.node}, O=${trustDomain}`,
    issuer: issuer.subject,
    notBefore: new Date(now.getTime() - BACKDATE_MS),
    notAfter,
    publicKey: keys.publicKey,
    signingKey: rootKey,
    signingAlgorithm: SIGNING,
    extensions: await caExtensions(0, keys.publicKey, nodeId(trustDomain, opts.node), [
      trustDomainConstraint(trustDomain),
      await x509.AuthorityKeyIdentifierExtension.create(issuer),
    ]),
  })
  await mkdir(opts.outDir, { recursive: true, mode: 0o700 })
  const files = await writeAll([
    { path: paths.key, text: await privateKeyPem(keys.privateKey), mode: 0o600 },
    { path: paths.cert, text: cert.toString('pem') + '\n', mode: 0o644 },
    { path: paths.bundle, text: bundle, mode: 0o644 },
  ])
  return { files, trustDomain, notAfter }
}

/** The trust domain a root was made for, from its `spiffe://<td>` URI SAN. */
export function rootTrustDomain(root: X509Certificate, file: string): string {
  const td = uriSans(root).map((u) => /^spiffe:\/\/([a-z0-9.-]+)$/.exec(u)?.[1]).find((x) => x !== undefined)
  if (!td) throw new CertFileError(file, 'is not a hostmesh root (no spiffe://<trustDomain> URI SAN)')
  return td
}

/** A CA's PKCS#8 P-256 key, checked to belong to its certificate. */
export async function loadSigningKey(file: string, cert: X509Certificate): Promise<Key> {
  const text = await readOrExplain(file)
  let matches: boolean
  try {
    matches = cert.checkPrivateKey(createPrivateKey(text))
  } catch (err) {
    throw new CertFileError(file, 'is not a PEM private key', { cause: err })
  }
  if (!matches) throw new CertFileError(file, 'does not belong to the CA certificate next to it')
  return importSigningKey(text).catch((err: unknown) => {
    throw new CertFileError(file, 'is not a PKCS#8 ECDSA P-256 key', { cause: err })
  })
}

async function refuseOverwrite(paths: readonly string[], force = false): Promise<void> {
  if (force) return
  for (const p of paths) {
    if (await stat(p).then(() => true, () => false)) throw new CertOverwriteError(p)
  }
}

export async function readOrExplain(file: string): Promise<string> {
  try {
    return await readFile(file, 'utf8')
  } catch (err) {
    throw new CertFileError(file, `cannot read: ${(err as NodeJS.ErrnoException).code ?? String(err)}`, { cause: err })
  }
}

/**
 * Writes a set of files all or nothing, as far as a filesystem allows: every temp file is
 * created with its `mode` (never wider, whatever the umask), written and synced first; only
 * then are they renamed into place, and the directories synced. A failure before the renames
 * leaves no new file behind, so a retry does not need --force.
 */
export async function writeAll(files: ReadonlyArray<{ path: string; text: string; mode: number }>): Promise<WrittenFile[]> {
  const temps: string[] = []
  try {
    for (const f of files) {
      const tmp = `${f.path}.tmp-${process.pid}`
      await unlink(tmp).catch(() => undefined)
      const fh = await open(tmp, 'wx', f.mode)
      temps.push(tmp)
      try {
        await fh.chmod(f.mode)
        await fh.writeFile(f.text)
        await fh.sync()
      } finally {
        await fh.close()
      }
    }
  } catch (err) {
    await Promise.all(temps.map((t) => unlink(t).catch(() => undefined)))
    throw err
  }
  for (const [i, f] of files.entries()) await rename(temps[i]!, f.path)
  for (const dir of new Set(files.map((f) => dirname(f.path)))) {
    const dh = await open(dir, 'r')
    await dh.sync().finally(() => dh.close())
  }
  return files.map((f) => ({ path: f.path, mode: f.mode }))
}
