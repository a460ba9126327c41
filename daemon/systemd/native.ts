// Loads the sdnotify addon (addon/sdnotify.c) once. Node cannot send on an AF_UNIX datagram
// socket, pass fds with SCM_RIGHTS, or inspect an fd before adopting it; libsystemd's
// sd_notify is a few lines of C, so hostmesh carries them instead of a package.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { packageRoot } from '../paths.ts'
import { SdAddonUnavailableError } from './errors.ts'

export interface InheritedSocketInfo {
  readonly address: string
  readonly port: number
  readonly family: 4 | 6
}

export interface SdAddon {
  notify(socketPath: string, message: string, fds: readonly number[]): void
  /** null when `fd` is not a listening TCP socket; sets FD_CLOEXEC either way. */
  listeningSocket(fd: number): InheritedSocketInfo | null
}

let loaded: SdAddon | SdAddonUnavailableError | undefined

export function loadSdAddon(path: string = join(packageRoot(), 'build', 'Release', 'sdnotify.node')): SdAddon {
  if (loaded === undefined) {
    try {
      loaded = createRequire(import.meta.url)(path) as SdAddon
    } catch (err) {
      loaded = new SdAddonUnavailableError(path, { cause: err })
    }
  }
  if (loaded instanceof SdAddonUnavailableError) throw loaded
  return loaded
}
