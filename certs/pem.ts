// PEM files into node:crypto certificates, with errors that name the file and the block.
import { X509Certificate } from 'node:crypto'
import { CertFileError } from './errors.ts'

const BLOCK = /-----BEGIN ([A-Z0-9 ]+)-----\r?\n([A-Za-z0-9+/=\r\n]+?)-----END \1-----/g

/** Every CERTIFICATE block of `text`, in order. Other block types are an error: keys do not belong in certificate files. */
export function parseCertificates(text: string, file: string): X509Certificate[] {
  const certs: X509Certificate[] = []
  for (const m of text.matchAll(BLOCK)) {
    const n = certs.length + 1
    if (m[1] !== 'CERTIFICATE') throw new CertFileError(file, `block ${n} is a ${m[1]}, expected only CERTIFICATE blocks`)
    try {
      certs.push(new X509Certificate(m[0]))
    } catch (err) {
      throw new CertFileError(file, `certificate ${n} does not parse: ${(err as Error).message}`, { cause: err })
    }
  }
  return certs
}
