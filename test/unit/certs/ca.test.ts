// What `ca init` / `ca node` make, checked with openssl: the node CA's extensions, and that its
// name constraints let it vouch for workload URIs in the trust domain and nothing else.
import { execFileSync } from 'node:child_process'
import { readFileSync, writeFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { importSigningKey } from '../../../certs/x509.ts'
import { authorityKeyId, newKeyPair, randomSerial, SIGNING, x509 } from '../../../certs/x509.ts'
import { id, pki } from '../../helpers/pki.ts'

function openssl(args: string[]): string {
  try {
    return execFileSync('openssl', args, { encoding: 'utf8', stdio: 'pipe' })
  } catch (err) {
    const e = err as { stdout?: string; stderr?: string }
    return `${e.stdout ?? ''}${e.stderr ?? ''}`
  }
}

t.test('the node CA: CA, pathLen 0, keyCertSign, node URI SAN, 1 year, name constraints', async (t) => {
  const p = pki(t)
  const root = await p.root('root')
  const node = await p.node(root, 'node-a')
  const text = openssl(['x509', '-in', join(node, 'ca-cert.pem'), '-noout', '-text'])
  t.match(text, /X509v3 Basic Constraints: critical\s+CA:TRUE, pathlen:0/)
  t.match(text, /X509v3 Key Usage: critical\s+Digital Signature, Certificate Sign, CRL Sign/)
  t.match(text, /URI:spiffe:\/\/cluster\.local\/hostmesh\/node\/node-a/)
  t.match(text, /X509v3 Name Constraints: critical\s+Permitted:\s+URI:cluster\.local\s+email:invalid\s+Excluded:\s+DNS:\s+IP:0\.0\.0\.0\/0\.0\.0\.0\s+IP:0:0:0:0:0:0:0:0\/0:0:0:0:0:0:0:0\n/)
  t.match(text, /Public-Key: \(256 bit\)[\s\S]*NIST CURVE: P-256/)
  const days = (Date.parse(/Not After : (.*)/.exec(text)![1]!) - Date.parse(/Not Before: (.*)/.exec(text)![1]!)) / 86_400_000
  t.ok(days > 364.9 && days < 365.1, `valid one year (${days.toFixed(2)} days)`)
  t.match(openssl(['x509', '-in', join(root, 'root-cert.pem'), '-noout', '-text']), /CA:TRUE, pathlen:1[\s\S]*URI:spiffe:\/\/cluster\.local\n/)
})

t.test('name constraints: workload URIs in the trust domain only', async (t) => {
  const p = pki(t)
  const root = await p.root('root')
  const nodeDir = await p.node(root, 'node-a')
  const ca = new x509.X509Certificate(readFileSync(join(nodeDir, 'ca-cert.pem'), 'utf8'))
  const key = await importSigningKey(readFileSync(join(nodeDir, 'ca-key.pem'), 'utf8'))
  const aki = await authorityKeyId(ca)
  const verify = async (name: string, sans: x509.JsonGeneralNames): Promise<string> => {
    const k = await newKeyPair()
    const c = await x509.X509CertificateGenerator.create({
      serialNumber: randomSerial(), subject: '', issuer: ca.subject, notBefore: new Date(Date.now() - 60_000), notAfter: new Date(Date.now() + 3_600_000),
      publicKey: k.publicKey, signingKey: key, signingAlgorithm: SIGNING,
      extensions: [new x509.BasicConstraintsExtension(false), new x509.SubjectAlternativeNameExtension(sans, true), aki],
    })
    const file = join(p.dir, `${name}.pem`)
    writeFileSync(file, c.toString('pem'))
    return openssl(['verify', '-CAfile', join(root, 'root-cert.pem'), '-untrusted', join(nodeDir, 'ca-cert.pem'), file])
  }
  t.match(await verify('workload', [{ type: 'url', value: id('shop', 'payments') }]), /: OK/, 'a workload in the trust domain')
  for (const [name, sans] of [
    ['dns', [{ type: 'dns', value: 'www.bank.example' }]],
    ['ip4', [{ type: 'ip', value: '10.0.0.1' }]],
    ['ip6', [{ type: 'ip', value: 'fd00::1' }]],
    ['email', [{ type: 'email', value: 'a@bank.example' }]],
    ['foreign-uri', [{ type: 'url', value: 'spiffe://other.example/ns/a/sa/b' }]],
  ] as const) {
    t.match(await verify(name, [...sans]), /(excluded|permitted) subtree violation/, `${name} is refused by the node CA's constraints`)
  }
})
