import { HostmeshError } from '../../base/errors.ts'

/** A mesh listener's port could not be bound (in use, not permitted, no such address). CLI exit 75. */
export class ListenerBindError extends HostmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_LISTEN', message, options)
  }
}
