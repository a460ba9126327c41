// verifyPeer's rules on hand-built chains: every refusal reason, and what is accepted.
import { X509Certificate } from 'node:crypto'
import t from 'tap'
import { nodeId, parseNodeId, parseWorkloadId, serverName, trustDomainId, workloadId } from '../../../certs/spiffe.ts'
import { verifyPeer, type TrustPolicy } from '../../../certs/verify.ts'
import { caExtensions, newKeyPair, randomSerial, SIGNING, trustDomainConstraint, x509, type KeyPair } from '../../../certs/x509.ts'

const TD = 'cluster.local'
const HOUR = 3_600_000
const ID = workloadId(TD, 'shop', 'payments')

interface Made { cert: X509Certificate; x: x509.X509Certificate; keys: KeyPair }

async function make(issuer: Made | undefined, opts: { uris: string[]; ca?: boolean; pathLen?: number; eku?: string[]; from?: number; to?: number; subject?: string }): Promise<Made> {
  const keys = await newKeyPair()
  const now = Date.now()
  const exts: x509.Extension[] = opts.ca
    ? await caExtensions(opts.pathLen, keys.publicKey, opts.uris[0]!, opts.pathLen === 0 ? [trustDomainConstraint(TD)] : [])
    : [
        new x509.BasicConstraintsExtension(false, undefined, true),
        ...(opts.uris.length ? [new x509.SubjectAlternativeNameExtension(opts.uris.map((value) => ({ type: 'url' as const, value })), true)] : []),
        ...(opts.eku ? [new x509.ExtendedKeyUsageExtension(opts.eku)] : []),
      ]
  const common = { serialNumber: randomSerial(), notBefore: new Date(now + (opts.from ?? -HOUR)), notAfter: new Date(now + (opts.to ?? HOUR)), signingAlgorithm: SIGNING, extensions: exts }
  const x = issuer
    ? await x509.X509CertificateGenerator.create({ ...common, subject: opts.subject ?? '', issuer: issuer.x.subject, publicKey: keys.publicKey, signingKey: issuer.keys.privateKey })
    : await x509.X509CertificateGenerator.createSelfSigned({ ...common, name: opts.subject ?? 'CN=root', keys })
  return { cert: new X509Certificate(x.toString('pem')), x, keys }
}

t.test('SPIFFE helpers', async (t) => {
  t.equal(ID, 'spiffe://cluster.local/ns/shop/sa/payments')
  t.same(parseWorkloadId(ID), { trustDomain: TD, namespace: 'shop', serviceAccount: 'payments' })
  t.equal(parseWorkloadId('spiffe://cluster.local/ns/shop/sa/payments/extra'), undefined)
  t.equal(parseWorkloadId(nodeId(TD, 'node-a')), undefined, 'a node ID is not a workload ID')
  t.same(parseNodeId(nodeId(TD, 'node-a')), { trustDomain: TD, node: 'node-a' })
  t.equal(parseNodeId(ID), undefined)
  t.equal(trustDomainId(TD), 'spiffe://cluster.local')
  t.equal(serverName(ID), 'payments.shop.serviceaccount.identity.cluster.local')
  t.equal(serverName('spiffe://x/y'), undefined)
})

t.test('every refusal has its reason', async (t) => {
  const root = await make(undefined, { uris: [trustDomainId(TD)], ca: true, pathLen: 1, subject: 'CN=root' })
  const nodeA = await make(root, { uris: [nodeId(TD, 'node-a')], ca: true, pathLen: 0, subject: 'CN=node a' })
  const nodeB = await make(root, { uris: [nodeId(TD, 'node-b')], ca: true, pathLen: 0, subject: 'CN=node b' })
  const subCa = await make(nodeB, { uris: [nodeId(TD, 'node-a')], ca: true, pathLen: 0, subject: 'CN=hostmesh node node-a' })
  const oldNode = await make(root, { uris: [nodeId(TD, 'node-a')], ca: true, pathLen: 0, subject: 'CN=node a old', to: -60_000 })
  const other = await make(undefined, { uris: [trustDomainId(TD)], ca: true, pathLen: 1, subject: 'CN=root' })
  const trust: TrustPolicy = { trustDomain: TD, roots: [root.cert], nodesOf: (id) => (id === ID ? new Set(['node-a']) : undefined) }
  const leaf = (iss: Made, o: Parameters<typeof make>[1] = { uris: [ID] }) => make(iss, o)

  const good = await leaf(nodeA, { uris: [ID], eku: ['1.3.6.1.5.5.7.3.1', '1.3.6.1.5.5.7.3.2'] })
  t.match(verifyPeer([good.cert, nodeA.cert], trust, { expected: ID, usage: 'serverAuth' }), { ok: true, identity: ID, node: 'node-a' })
  t.match(verifyPeer([good.cert, nodeA.cert], { trustDomain: TD, roots: [root.cert] }), { ok: true, identity: ID }, 'without node binding (file mode)')
  t.match(verifyPeer([good.cert, root.cert, nodeA.cert], trust), { ok: true }, 'chain order and an extra root do not matter')

  const cases: Array<[string, X509Certificate[], string, TrustPolicy?, object?]> = [
    ['no certificate', [], 'no_certificate'],
    ['no URI SAN', [(await leaf(nodeA, { uris: [] })).cert, nodeA.cert], 'bad_spiffe_id'],
    ['two URI SANs', [(await leaf(nodeA, { uris: [ID, workloadId(TD, 'shop', 'x')] })).cert, nodeA.cert], 'bad_spiffe_id'],
    ['a node ID as a leaf', [(await leaf(nodeA, { uris: [nodeId(TD, 'node-a')] })).cert, nodeA.cert], 'bad_spiffe_id'],
    ['a foreign trust domain', [(await leaf(nodeA, { uris: [workloadId('evil.example', 'shop', 'payments')] })).cert, nodeA.cert], 'foreign_trust_domain'],
    ['a node CA as leaf', [nodeB.cert], 'bad_spiffe_id'],
    ['a CA certificate carrying a workload ID', [(await make(nodeA, { uris: [ID], ca: true, pathLen: 0 })).cert, nodeA.cert], 'untrusted'],
    // A compromised node-b signs a sub-CA that claims to be node-a's, and mints node-a's workload under it.
    ['a sub-CA under a pathLen-0 node CA', [(await leaf(subCa)).cert, subCa.cert, nodeB.cert], 'untrusted'],
    ['the same without node binding', [(await leaf(subCa)).cert, subCa.cert, nodeB.cert], 'untrusted', { trustDomain: TD, roots: [root.cert] }],
    ['an intermediate missing from the chain', [good.cert], 'untrusted'],
    ['a foreign root', [(await leaf(other)).cert, other.cert], 'untrusted'],
    ['an expired intermediate', [(await leaf(oldNode)).cert, oldNode.cert], 'expired'],
    ['an expired leaf', [(await leaf(nodeA, { uris: [ID], from: -3 * HOUR, to: -HOUR })).cert, nodeA.cert], 'expired'],
    ['a leaf not valid yet', [(await leaf(nodeA, { uris: [ID], from: HOUR, to: 2 * HOUR })).cert, nodeA.cert], 'not_yet_valid'],
    ['the wrong identity', [good.cert, nodeA.cert], 'wrong_identity', trust, { expected: workloadId(TD, 'shop', 'ledger') }],
    ['an identity policy does not know', [(await leaf(nodeA, { uris: [workloadId(TD, 'shop', 'ghost')] })).cert, nodeA.cert], 'unknown_identity'],
    ['another node\'s CA', [(await leaf(nodeB)).cert, nodeB.cert], 'wrong_node'],
    ['a leaf straight from the root (no node CA)', [(await leaf(root)).cert], 'wrong_node'],
    ['a server-only leaf used as a client', [(await leaf(nodeA, { uris: [ID], eku: ['1.3.6.1.5.5.7.3.1'] })).cert, nodeA.cert], 'untrusted', trust, { usage: 'clientAuth' }],
  ]
  for (const [name, chain, reason, tp, opts] of cases) {
    const v = verifyPeer(chain, tp ?? trust, opts ?? {})
    t.match(v, { ok: false, reason }, `${name}: ${reason}`)
    if (!v.ok) t.notMatch(v.message, /BEGIN CERTIFICATE/, `${name}: no certificate body in the message`)
  }
})

t.test('URI SANs from node\'s display string, quoted values included; odd strings fall back to DER', async (t) => {
  const { parseSanString, uriSans } = await import('../../../certs/verify.ts')
  t.same(parseSanString(undefined), [])
  t.same(parseSanString('URI:spiffe://a/ns/b/sa/c'), ['spiffe://a/ns/b/sa/c'])
  t.same(parseSanString('DNS:x.example, URI:spiffe://a/b, IP Address:10.0.0.1'), ['spiffe://a/b'])
  t.same(parseSanString('URI:"spiffe://a/ns/b/sa/c, URI:spiffe://evil", DNS:y'), ['spiffe://a/ns/b/sa/c, URI:spiffe://evil'], 'a comma inside a quoted value does not split it')
  t.same(parseSanString('URI:"spiffe://a\\"b"'), ['spiffe://a"b'])
  t.equal(parseSanString('URI:"unterminated'), undefined)
  t.equal(parseSanString('garbage'), undefined)
  t.same(parseSanString('URI:a,URI:b'), ['a,URI:b'], 'no ", " separator: one value')
  const root = await make(undefined, { uris: [trustDomainId(TD)], ca: true, pathLen: 1 })
  const leaf = await make(root, { uris: ['spiffe://cluster.local/ns/a/sa/"q"', ID] })
  t.same(uriSans(leaf.cert), ['spiffe://cluster.local/ns/a/sa/"q"', ID], 'matches the DER')
})

t.test('leaf SubjectKeyIdentifier is RFC 5280 method 1, as the library computes it', async (t) => {
  const { authorityKeyId, leafExtensions } = await import('../../../certs/x509.ts')
  const root = await make(undefined, { uris: [trustDomainId(TD)], ca: true, pathLen: 1 })
  const keys = await newKeyPair()
  const exts = await leafExtensions(keys.publicKey, await authorityKeyId(root.x), ID)
  const ski = exts.find((e) => e instanceof x509.SubjectKeyIdentifierExtension) as x509.SubjectKeyIdentifierExtension
  t.equal(ski.keyId, (await x509.SubjectKeyIdentifierExtension.create(keys.publicKey)).keyId)
})
