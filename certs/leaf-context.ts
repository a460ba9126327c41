// The TLS context a leaf is served and dialled with: built by the certificate manager when it
// publishes a leaf, and by each worker thread from the leaves it is posted (a SecureContext
// cannot cross threads). Its own module so a worker loads this and not the manager.
import { createSecureContext, type SecureContext } from 'node:tls'
import type { LeafMaterial } from './issuer.ts'

export function leafContext(m: LeafMaterial, bundlePem: string): SecureContext {
  return createSecureContext({ key: m.keyPem, cert: m.certPem + m.chainPem, ca: bundlePem, minVersion: 'TLSv1.3' })
}
