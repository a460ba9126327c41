import { HostmeshError } from '../../base/errors.ts'

/** A worker thread could not bind its listeners, or ended before it had. */
export class WorkerStartError extends HostmeshError {
  constructor(id: number, message: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_WORKER_START', `worker ${id}: ${message}`, options)
  }
}
