import { HostmeshError } from '../../base/errors.ts'

export class UsageError extends HostmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_USAGE', message, options)
  }
}

/** A command that reads a running daemon got no usable answer from its admin port; `url` is what it asked. */
export class AdminRequestError extends HostmeshError {
  readonly url: string
  constructor(url: string, message: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_ADMIN_REQUEST', message, options)
    this.url = url
  }
}
