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
  /** Whether anything went back to the kernel. */
  trim(): boolean
  inUse(): MallocUse
}

interface Addon extends MallocTrim {
  /** false when built against another libc than glibc: trim() would do nothing. */
  readonly supported: boolean
}

export class MallocTrimUnavailableError extends HostmeshError {
  constructor(path: string, options?: { cause?: unknown }) {
    const why = options?.cause instanceof Error ? options.cause.message.split('\n')[0] : 'unknown reason'
    super('HOSTMESH_ERR_MALLOC_TRIM_UNAVAILABLE', `the malloctrim addon ${path} cannot trim (${why}); memory freed by malloc stays with the process until reused. With glibc, rebuild it: \`npm run build:addon\`.`, options)
  }
}

const loader = addonLoader<Addon>('malloctrim', (path, cause) => new MallocTrimUnavailableError(path, { cause }))

/** The addon, or the error saying why it is not there or cannot trim here. */
export function loadMallocTrim(path?: string): MallocTrim | MallocTrimUnavailableError {
  try {
    const addon = loader.load(path)
    if (!addon.supported) return new MallocTrimUnavailableError(path ?? 'malloctrim', { cause: new Error('not glibc: malloc_trim is not available') })
    return addon
  } catch (err) {
    return err as MallocTrimUnavailableError
  }
}
