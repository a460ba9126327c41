import { HostmeshError } from '../../base/errors.ts'

/** The sd_notify addon is not built or does not load. Only fatal when $NOTIFY_SOCKET or $LISTEN_FDS is set. */
export class SdAddonUnavailableError extends HostmeshError {
  constructor(path: string, options?: { cause?: unknown }) {
    const why = options?.cause instanceof Error ? options.cause.message.split('\n')[0] : 'unknown reason'
    super('HOSTMESH_ERR_SD_UNAVAILABLE',
      `the systemd addon ${path} could not be loaded (${why}); it is needed under systemd (Type=notify, socket activation). ` +
      'It is built by `npm ci` with node-gyp: install a C toolchain (Debian: apt-get install -y g++ make python3) and run `npm run build:addon`.', options)
  }
}

/** $LISTEN_FDS / $LISTEN_FDNAMES / $LISTEN_PID are malformed, or an inherited fd is not a listening TCP socket. */
export class ListenFdsError extends HostmeshError {
  constructor(message: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_LISTEN_FDS', message, options)
  }
}
