// The one place @peculiar/x509 is set up (it needs reflect-metadata first, and a WebCrypto
// provider), plus the certificate-building blocks hostmesh needs: P-256 keys, PEM, and the
// extensions of roots, node intermediates and leaves. Building only; checking peers is
// verify.ts, on node:crypto's X509Certificate.
import 'reflect-metadata'
import { createHash, webcrypto } from 'node:crypto'
import { AsnConvert } from '@peculiar/asn1-schema'
import { GeneralName, GeneralSubtree, GeneralSubtrees, id_ce_nameConstraints, NameConstraints } from '@peculiar/asn1-x509'
import * as x509 from '@peculiar/x509'

x509.cryptoProvider.set(webcrypto as unknown as Parameters<typeof x509.cryptoProvider.set>[0])

export { x509 }
export type Key = webcrypto.CryptoKey
export type KeyPair = webcrypto.CryptoKeyPair

const EC_KEY: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' }
export const SIGNING: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' }

export function newKeyPair(): Promise<KeyPair> {
  return webcrypto.subtle.generateKey(EC_KEY, true, ['sign', 'verify']) as Promise<KeyPair>
}

export async function privateKeyPem(key: Key): Promise<string> {
  return x509.PemConverter.encode(await webcrypto.subtle.exportKey('pkcs8', key), 'PRIVATE KEY')
}

/** A PKCS#8 P-256 private key, as `ca` and the node writes them, for signing. */
export async function importSigningKey(pem: string): Promise<Key> {
  const der = x509.PemConverter.decodeFirst(pem)
  return webcrypto.subtle.importKey('pkcs8', der, EC_KEY, false, ['sign'])
}

/** 16 random bytes with the top bit clear: a positive serial, as RFC 5280 asks. */
export function randomSerial(): string {
  const b = webcrypto.getRandomValues(new Uint8Array(16))
  b[0]! &= 0x7f
  return Buffer.from(b).toString('hex')
}

/**
 * Name constraints for a node CA: URIs only in the trust domain (RFC 5280 4.2.1.10), and no
 * DNS name, IP address or email address at all. A permitted subtree constrains only its own
 * name type, so the other types are shut out too: DNS and IP by excluding everything (an
 * empty DNS base and the 0/0 networks match every name of their type), email by permitting
 * only the reserved `invalid` domain (OpenSSL does not treat an empty email base as "all").
 */
export function trustDomainConstraint(trustDomain: string): x509.Extension {
  const subtree = (base: ConstructorParameters<typeof GeneralName>[0]): GeneralSubtree => new GeneralSubtree({ base: new GeneralName(base) })
  return new x509.Extension(id_ce_nameConstraints, true, AsnConvert.serialize(new NameConstraints({
    permittedSubtrees: new GeneralSubtrees([subtree({ uniformResourceIdentifier: trustDomain }), subtree({ rfc822Name: 'invalid' })]),
    excludedSubtrees: new GeneralSubtrees([subtree({ dNSName: '' }), subtree({ iPAddress: '0.0.0.0/0' }), subtree({ iPAddress: '::/0' })]),
  })))
}

export function caExtensions(pathLength: number | undefined, publicKey: Key, uri: string, extra: x509.Extension[] = []): Promise<x509.Extension[]> {
  return x509.SubjectKeyIdentifierExtension.create(publicKey).then((ski) => [
    new x509.BasicConstraintsExtension(true, pathLength, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign | x509.KeyUsageFlags.digitalSignature, true),
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }]),
    ski,
    ...extra,
  ])
}

/** The issuer's key identifier, for its leaves' AuthorityKeyIdentifier: computed once per issuer. */
export function authorityKeyId(issuer: x509.X509Certificate): Promise<x509.Extension> {
  return x509.AuthorityKeyIdentifierExtension.create(issuer)
}

export async function leafExtensions(publicKey: Key, authorityKeyIdExt: x509.Extension, uri: string): Promise<x509.Extension[]> {
  // RFC 5280 4.2.1.2 method 1: SHA-1 of the subjectPublicKey bits, which for an EC key are
  // its raw point. node:crypto does this in microseconds; the library's helper takes ~1 ms.
  const point = new Uint8Array(await webcrypto.subtle.exportKey('raw', publicKey))
  const ski = createHash('sha1').update(point).digest('hex')
  return [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyAgreement, true),
    new x509.ExtendedKeyUsageExtension([x509.ExtendedKeyUsage.serverAuth, x509.ExtendedKeyUsage.clientAuth]),
    // The SVID's only name; critical because the subject DN is empty (RFC 5280 4.2.1.6).
    new x509.SubjectAlternativeNameExtension([{ type: 'url', value: uri }], true),
    new x509.SubjectKeyIdentifierExtension(ski),
    authorityKeyIdExt,
  ]
}
