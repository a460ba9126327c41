// Sockets passed in by the service manager, as sd_listen_fds_with_names(3) reads them:
// fds 3..3+$LISTEN_FDS-1, named by $LISTEN_FDNAMES, meant for us if $LISTEN_PID is our pid.
// Two sources use this: hostmesh.socket (the fixed ports: admin, :15006, :15008) and the fd
// store (the per-workload outbound ports the daemon handed to systemd with FDSTORE=1, under
// the name "outbound/<workload key>"). Listeners take them by address and port, so one socket
// unit can hold every fixed port whatever the order of its ListenStream= lines.
import { isIP } from 'node:net'
import { loadSdAddon, type InheritedSocketInfo, type SdAddon } from './native.ts'
import { ListenFdsError } from './errors.ts'

export const LISTEN_FDS_START = 3
export const OUTBOUND_FD_PREFIX = 'outbound/'

export interface InheritedSocket extends InheritedSocketInfo {
  readonly fd: number
  readonly name: string
}

export class InheritedSockets {
  readonly #free: InheritedSocket[]

  constructor(sockets: readonly InheritedSocket[]) {
    this.#free = [...sockets]
  }

  /**
   * Reads and then unsets the LISTEN_* variables (they describe this process only; children
   * must not see them). No LISTEN_FDS, or a LISTEN_PID of another process: nothing inherited.
   */
  static fromEnv(env: NodeJS.ProcessEnv, pid: number = process.pid, addon?: SdAddon, start = LISTEN_FDS_START): InheritedSockets {
    const { LISTEN_FDS: count, LISTEN_PID: forPid, LISTEN_FDNAMES: names } = env
    delete env.LISTEN_FDS
    delete env.LISTEN_PID
    delete env.LISTEN_FDNAMES
    // As sd_listen_fds(3): the sockets are ours only if LISTEN_PID says so.
    if (count === undefined || count === '' || forPid !== String(pid)) return new InheritedSockets([])
    if (!/^\d{1,4}$/.test(count)) throw new ListenFdsError(`LISTEN_FDS=${JSON.stringify(count)}: expected a number of file descriptors`)
    const n = Number(count)
    const nameList = names === undefined ? [] : names.split(':')
    if (names !== undefined && nameList.length !== n) throw new ListenFdsError(`LISTEN_FDNAMES has ${nameList.length} names for LISTEN_FDS=${n} descriptors`)
    const sd = addon ?? loadSdAddon()
    const sockets: InheritedSocket[] = []
    for (let i = 0; i < n; i++) {
      const fd = start + i
      const name = nameList[i] ?? 'unknown'
      const info = sd.listeningSocket(fd)
      if (!info) throw new ListenFdsError(`inherited fd ${fd} (LISTEN_FDNAMES "${name}") is not a listening TCP socket; hostmesh.socket must only have ListenStream= lines`)
      sockets.push({ ...info, fd, name })
    }
    return new InheritedSockets(sockets)
  }

  /** The inherited socket bound to exactly host:port, taken at most once. */
  take(host: string, port: number): number | undefined {
    const want = canonical(host)
    // A dual-stack listener takes an IPv4-only wildcard too: the socket unit decides the family
    // (ListenStream=0.0.0.0:15008, or a host without IPv6).
    const i = this.#free.findIndex((s) => s.port === port && (canonical(s.address) === want || (want === '::' && s.address === '0.0.0.0')))
    if (i < 0) return undefined
    return this.#free.splice(i, 1)[0]!.fd
  }

  /** The outbound port each workload had before the restart (from fd store names). */
  outboundPorts(): Map<string, number> {
    const out = new Map<string, number>()
    for (const s of this.#free) if (s.name.startsWith(OUTBOUND_FD_PREFIX)) out.set(s.name.slice(OUTBOUND_FD_PREFIX.length), s.port)
    return out
  }

  /** Sockets no listener took (those `which` selects), removed from this set: the caller closes them. */
  drainUnclaimed(which: (s: InheritedSocket) => boolean = () => true): InheritedSocket[] {
    const out = this.#free.filter(which)
    for (const s of out) this.#free.splice(this.#free.indexOf(s), 1)
    return out
  }

  /**
   * The sockets on `port` at other addresses than the one wanted (a workload whose match
   * changed while hostmesh was down): removed from this set, for the caller to close, since a
   * fresh bind on that port would fail against them.
   */
  evict(port: number): InheritedSocket[] {
    return this.drainUnclaimed((s) => s.port === port)
  }
}

function canonical(host: string): string {
  return isIP(host) === 6 ? host.toLowerCase() : host
}
