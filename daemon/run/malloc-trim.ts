// The malloctrim addon (addon/malloctrim.c), narrowed to what MemoryRelief needs. Optional:
// without it (not built, another libc) the daemon runs the same and glibc keeps what it keeps.
import { addonLoader } from '../native/addon.ts'
import { HostmeshError } from '../../base/errors.ts'

/** What glibc's malloc holds: from the kernel, and free but kept. */
export interface MallocUse {
  readonly arena: number
  readonly free: number
}

/** Gives glibc's free pages back to the kernel; reads what it holds. */
export interface MallocTrim {
  trim(): boolean
  inUse(): MallocUse
}

export class MallocTrimUnavailableError extends HostmeshError {
  constructor(path: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_MALLOC_TRIM_UNAVAILABLE', `the malloctrim addon ${path} could not be loaded; memory freed by malloc stays with the process until reused. Rebuild with \`npm run build:addon\`.`, options)
  }
}

const loader = addonLoader<MallocTrim>('malloctrim', (path, cause) => new MallocTrimUnavailableError(path, { cause }))

/** The addon, or the error saying why it is not there. */
export function loadMallocTrim(path?: string): MallocTrim | MallocTrimUnavailableError {
  try {
    return loader.load(path)
  } catch (err) {
    return err as MallocTrimUnavailableError
  }
}
