// Certificate errors. Every message names the file or identity it is about, and never
// carries key material or a certificate body.
import { HostmeshError } from '../base/errors.ts'

/** A certificate, key or bundle file is missing, unreadable or not what it must be. */
export class CertFileError extends HostmeshError {
  readonly file: string
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_CERT_FILE', `${file}: ${message}`, options)
    this.file = file
  }
}

/** `hostmesh ca` would overwrite an existing key without --force. */
export class CertOverwriteError extends HostmeshError {
  constructor(file: string) {
    super('HOSTMESH_ERR_CERT_EXISTS', `${file} already exists; refusing to overwrite a CA without --force`)
  }
}

/** A certificate (minted or read) failed validation before being published. */
export class CertInvalidError extends HostmeshError {
  constructor(subject: string, message: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_CERT_INVALID', `${subject}: ${message}`, options)
  }
}

/** No usable certificate for an identity (never issued, or expired with renewal failing). */
export class CertUnavailableError extends HostmeshError {
  constructor(identity: string, message: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_CERT_UNAVAILABLE', `${identity}: ${message}`, options)
  }
}

/** An mTLS peer was refused; `reason` is the hostmesh_tls_handshake_failures_total label. */
export class TlsPeerError extends HostmeshError {
  readonly reason: string
  constructor(reason: string, message: string) {
    super('HOSTMESH_ERR_TLS_PEER', message)
    this.reason = reason
  }
}
