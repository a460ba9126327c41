// Loads the sdnotify addon (addon/sdnotify.c) once. Node cannot send on an AF_UNIX datagram
// socket, pass fds with SCM_RIGHTS, or inspect an fd before adopting it; libsystemd's
// sd_notify is a few lines of C, so hostmesh carries them instead of a package.
import { addonLoader } from '../native/addon.ts'
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

const loader = addonLoader<SdAddon>('sdnotify', (path, cause) => new SdAddonUnavailableError(path, { cause }))

export function loadSdAddon(path?: string): SdAddon {
  return loader.load(path)
}
