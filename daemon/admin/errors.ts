import { HostmeshError } from '../../base/errors.ts'

/** The admin listener was asked to bind somewhere it must not, or could not bind. */
export class AdminBindError extends HostmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_ADMIN_BIND', message, options)
  }
}
