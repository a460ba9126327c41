// The daemon's side of the sd_notify(3) protocol: READY=1 once /ready would say ready,
// STATUS= lines for `systemctl status`, WATCHDOG=1 keep-alives, STOPPING=1 when the drain
// starts, and the fd store (FDSTORE=1 / FDSTOREREMOVE=1) that keeps the per-workload outbound
// listening sockets open across a restart. Outside systemd ($NOTIFY_SOCKET unset) every call
// is a no-op, so `hostmesh run` in a terminal behaves the same.
import type { Logger } from '../../base/logger.ts'
import { loadSdAddon, type SdAddon } from './native.ts'

export interface ServiceManagerOptions {
  readonly env: NodeJS.ProcessEnv
  readonly log: Logger
  readonly pid?: number
  readonly addon?: SdAddon
}

export class ServiceManager {
  readonly #socket: string | undefined
  readonly #log: Logger
  readonly #addon: SdAddon | undefined
  readonly #watchdogMs: number | undefined
  #watchdog: NodeJS.Timeout | undefined
  /** READY=1 went out: startup is over for systemd. */
  #readySent = false
  #stopping = false
  #reloading = false

  constructor(opts: ServiceManagerOptions) {
    const { env, log } = opts
    this.#log = log
    this.#socket = env.NOTIFY_SOCKET || undefined
    // Not for children: a program the daemon runs must not speak for the service.
    delete env.NOTIFY_SOCKET
    const usec = Number(env.WATCHDOG_USEC)
    const forUs = env.WATCHDOG_PID === undefined || env.WATCHDOG_PID === String(opts.pid ?? process.pid)
    this.#watchdogMs = this.#socket && forUs && Number.isFinite(usec) && usec > 0 ? usec / 1000 : undefined
    delete env.WATCHDOG_USEC
    delete env.WATCHDOG_PID
    this.#addon = this.#socket ? (opts.addon ?? loadSdAddon()) : undefined
  }

  /** True under a service manager that listens for notifications. */
  get enabled(): boolean {
    return this.#socket !== undefined
  }

  get watchdogMs(): number | undefined {
    return this.#watchdogMs
  }

  /**
   * READY=1: startup is complete (systemd then considers the unit started). Never after
   * STOPPING=1.
   */
  ready(status: string): void {
    if (this.#stopping) return
    this.#readySent = true
    this.#send(`READY=1\nSTATUS=${status}`)
  }

  status(status: string): void {
    if (!this.#stopping) this.#send(`STATUS=${status}`)
  }

  /**
   * RELOADING=1 for a SIGHUP, then reloaded() ends it with READY=1. Before READY=1 (still
   * starting) or while stopping it sends nothing: READY=1 then would tell systemd that
   * startup is complete while /ready is not.
   */
  reloading(): void {
    if (!this.#readySent || this.#stopping) return
    this.#reloading = true
    this.#send(`RELOADING=1\nMONOTONIC_USEC=${monotonicUsec()}`)
  }

  reloaded(status: string): void {
    if (!this.#reloading) return
    this.#reloading = false
    this.ready(status)
  }

  /**
   * STOPPING=1. `needMs` is how long the stop may take (the drain): systemd's stop timeout is
   * extended to it, so a drain longer than TimeoutStopSec= is not cut short by SIGKILL.
   */
  stopping(status: string, needMs?: number): void {
    this.stopWatchdog()
    this.#send(`STOPPING=1${needMs === undefined ? '' : `\nEXTEND_TIMEOUT_USEC=${Math.ceil(needMs) * 1000}`}\nSTATUS=${status}`)
    this.#stopping = true
  }

  /**
   * Pings at half the watchdog interval, from the event loop: a daemon whose loop is stuck
   * stops pinging and systemd restarts it, which is the point.
   */
  startWatchdog(): void {
    if (this.#watchdogMs === undefined || this.#watchdog) return
    this.#send('WATCHDOG=1')
    this.#watchdog = setInterval(() => this.#send('WATCHDOG=1'), Math.max(this.#watchdogMs / 2, 50))
    this.#watchdog.unref()
  }

  stopWatchdog(): void {
    clearInterval(this.#watchdog)
    this.#watchdog = undefined
  }

  /** Stores duplicates of `fds` under `name` (needs FileDescriptorStoreMax= in the unit). */
  storeFds(name: string, fds: readonly number[]): void {
    if (fds.length > 0) this.#send(`FDSTORE=1\nFDNAME=${name}`, fds)
  }

  /** Drops the stored fds named `name`, for a listener that is gone for good. */
  removeFds(name: string): void {
    this.#send(`FDSTOREREMOVE=1\nFDNAME=${name}`)
  }

  #send(message: string, fds: readonly number[] = []): void {
    if (!this.#socket || !this.#addon) return
    try {
      this.#addon.notify(this.#socket, message, fds)
    } catch (err) {
      // Losing a notification must not take the daemon down; systemd's own timeouts
      // (TimeoutStartSec, WatchdogSec) report what went missing.
      this.#log.warn({ err, message: message.split('\n')[0] }, 'sd_notify failed')
    }
  }
}

function monotonicUsec(): bigint {
  return process.hrtime.bigint() / 1000n
}
