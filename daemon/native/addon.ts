// What the two Node-API addons (intercept/addon/origdst.c, systemd/addon/sdnotify.c) share on
// the JavaScript side: where they are built, loading each once (a failure is kept and thrown
// again, with the fix in its message), and the file descriptor behind a Node socket or server.
import { createRequire } from 'node:module'
import { join } from 'node:path'
import { packageRoot } from '../paths.ts'

/** build/Release/<name>.node in the package. */
export function addonPath(name: string): string {
  return join(packageRoot(), 'build', 'Release', `${name}.node`)
}

/**
 * A loader for the addon `name`: the first load() decides, later calls return the same
 * module or throw the same error (made by `unavailable` from the path and the cause).
 * reset() forgets. The package is looked up on the first load, not on import.
 */
export function addonLoader<T>(name: string, unavailable: (path: string, cause: unknown) => Error): { load(path?: string): T; reset(): void } {
  let loaded: { addon: T } | { error: Error } | undefined
  return {
    load(path = addonPath(name)) {
      if (!loaded) {
        try {
          loaded = { addon: createRequire(import.meta.url)(path) as T }
        } catch (err) {
          loaded = { error: unavailable(path, err) }
        }
      }
      if ('error' in loaded) throw loaded.error
      return loaded.addon
    },
    reset() {
      loaded = undefined
    },
  }
}

/** The fd of a socket's or server's libuv handle; undefined once it is closed. */
export function handleFd(handleOwner: object): number | undefined {
  const fd = (handleOwner as { _handle?: { fd?: number } })._handle?.fd
  return typeof fd === 'number' && fd >= 0 ? fd : undefined
}
