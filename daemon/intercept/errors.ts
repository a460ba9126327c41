import { HostmeshError } from '../../base/errors.ts'

/** The SO_ORIGINAL_DST addon is not built or does not load. The message says how to fix it. */
export class OrigDstUnavailableError extends HostmeshError {
  constructor(path: string, options?: { cause?: unknown }) {
    const why = options?.cause instanceof Error ? options.cause.message.split('\n')[0] : 'unknown reason'
    super('HOSTMESH_ERR_ORIGDST_UNAVAILABLE',
      `the original-destination addon ${path} could not be loaded (${why}). ` +
      'It is built by `npm ci` with node-gyp. To fix: install a C toolchain ' +
      '(Debian: apt-get install -y g++ make python3), then run `npm rebuild hostmesh` or `npm run build:addon` ' +
      'in the hostmesh package directory, and restart.', options)
  }
}

/**
 * getsockopt failed for one connection. `errno` is the system code: ENOENT means the
 * connection has no NAT entry, i.e. it reached the listener without an iptables REDIRECT.
 */
export class OrigDstLookupError extends HostmeshError {
  readonly errno: string
  constructor(errno: string, message: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_ORIGDST_LOOKUP', message, options)
    this.errno = errno
  }
}

/** An iptables command failed; `command` and the tool's own stderr say which and why. */
export class IptablesError extends HostmeshError {
  readonly command: string
  constructor(command: string, stderr: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_IPTABLES', `${command} failed: ${stderr.trim() || 'no output'}${/Permission denied|not permitted/i.test(stderr) ? ' (hostmesh needs CAP_NET_ADMIN, or root, to change iptables)' : ''}`, options)
    this.command = command
  }
}
