import { HostmeshError } from '../errors.ts'

export class UsageError extends HostmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_USAGE', message, options)
  }
}

/** A subcommand that a later milestone delivers. It says so plainly instead of faking output. */
export class NotImplementedError extends HostmeshError {
  constructor(what: string) {
    super('HOSTMESH_ERR_NOT_IMPLEMENTED', `${what}: not implemented yet`)
  }
}
