// /certs: for each local workload identity its state, serial, validity, issuer and next
// renewal, plus where certificates come from (mode, bundle roots, node CA). Never a key,
// never a certificate body.
import type { CertManager } from '../../certs/manager.ts'
import type { AdminServer } from './server.ts'

export function registerCerts(admin: AdminServer, certs: CertManager): void {
  admin.route('GET', '/certs', () => ({ status: 200, body: { ...certs.source(), identities: certs.views() } }))
}
