// The destination an outbound connection was headed for before iptables REDIRECTed it to our
// listener: getsockopt(SO_ORIGINAL_DST) for IPv4, IP6T_SO_ORIGINAL_DST for IPv6, through the
// small Node-API addon in addon/origdst.c (Node has no API for it).
import { isIPv4, type Socket } from 'node:net'
import { addonLoader, addonPath, handleFd } from '../native/addon.ts'
import { OrigDstLookupError, OrigDstUnavailableError } from './errors.ts'

export interface OriginalDst {
  readonly address: string
  readonly port: number
  readonly family: 4 | 6
}

interface Addon {
  originalDst(fd: number, family: 4 | 6): OriginalDst
}

const loader = addonLoader<Addon>('origdst', (path, cause) => new OrigDstUnavailableError(path, { cause }))

export function defaultAddonPath(): string {
  return addonPath('origdst')
}

/** Loads the addon once; later calls return the same addon or throw the same error. */
export function loadAddon(path?: string): Addon {
  return loader.load(path)
}

/** For tests and `hostmesh version`: forget the cached load result. */
export function resetAddonForTests(): void {
  loader.reset()
}

export function addonStatus(path?: string): { ok: true } | { ok: false; reason: string } {
  try {
    loadAddon(path)
    return { ok: true }
  } catch (err) {
    const cause = (err as Error).cause
    return { ok: false, reason: cause instanceof Error ? cause.message.split('\n')[0]! : String(err) }
  }
}

/**
 * The original destination of an accepted, REDIRECTed connection. conntrack tracks every
 * connection, so one that reached the listener directly (no REDIRECT) reports the listener's
 * own address: callers must treat that as "not captured". An IPv4 client on a
 * dual-stack listener shows up as ::ffff:a.b.c.d but is tracked by IPv4 conntrack, so the
 * family is taken from the peer address, not from the socket.
 */
export function originalDst(socket: Socket, addon: Addon = loadAddon()): OriginalDst {
  const fd = handleFd(socket)
  if (fd === undefined) {
    throw new OrigDstLookupError('EBADF', 'cannot read the original destination: the socket has no file descriptor (closed already?)')
  }
  const remote = socket.remoteAddress ?? ''
  const family: 4 | 6 = isIPv4(remote) || remote.toLowerCase().startsWith('::ffff:') ? 4 : 6
  try {
    return addon.originalDst(fd, family)
  } catch (err) {
    const errno = (err as NodeJS.ErrnoException).code ?? 'EIO'
    const hint = errno === 'ENOENT' ? ' (no NAT entry: the connection was not redirected by iptables)' : ''
    throw new OrigDstLookupError(errno, `cannot read the original destination of ${remote}:${socket.remotePort}: ${(err as Error).message}${hint}`, { cause: err })
  }
}
