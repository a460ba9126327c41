// HTTP/2 PING keepalive for HBONE sessions, both ends: a PING every `intervalMs`, and a session
// whose peer has given no sign of life within `timeoutMs` is declared dead. A peer that died, a
// path that black-holes, and a connection whose writes are stuck (a peer that stopped reading,
// or a close the transport never reported) all look the same from here: nothing arrives.
// Without this, a dead session keeps its tunnels, and their workload-side sockets, open until
// restart.
// "Sign of life" is the PING's answer or any byte read meanwhile: a busy peer (or our own
// event loop, late under load) must not get a healthy session killed, with its tunnels.
import type { Http2Session } from 'node:http2'
import type { HboneLimits } from './admission.ts'

export interface KeepaliveSettings {
  readonly intervalMs: number
  readonly timeoutMs: number
}

/** The node config's `hbone.keepalive*`, as both ends of a session use them. */
export function keepaliveOf(limits: Pick<HboneLimits, 'keepaliveIntervalMs' | 'keepaliveTimeoutMs'>): KeepaliveSettings {
  return { intervalMs: limits.keepaliveIntervalMs, timeoutMs: limits.keepaliveTimeoutMs }
}

export function keepalive(h2: Http2Session, s: KeepaliveSettings, dead: (why: string) => void): void {
  const bytesRead = (): number => (h2.socket as { bytesRead?: number } | undefined)?.bytesRead ?? 0
  let waiting: NodeJS.Timeout | undefined
  let answered = false
  const timer = setInterval(() => {
    // A session that is closing (node's close(), or a GOAWAY either way) can no longer send a
    // PING (node cancels it), and a peer that is finishing its tunnels may be silent: there
    // the kernel's TCP keepalive (tcpKeepalive below) finds a dead peer instead.
    if (waiting !== undefined || h2.destroyed || h2.closed) return
    answered = false
    const readBefore = bytesRead()
    h2.ping((err) => { if (!err) answered = true })
    waiting = setTimeout(() => {
      // Reads that are due run first: an answer waiting in the socket still counts.
      setImmediate(() => {
        waiting = undefined
        if (answered || bytesRead() !== readBefore || h2.destroyed || h2.closed) return
        stop()
        dead(`nothing from the peer, not even the answer to an HTTP/2 PING, within ${s.timeoutMs} ms`)
      })
    }, s.timeoutMs)
  }, s.intervalMs)
  // Never the reason the process stays up.
  timer.unref()
  const stop = (): void => {
    clearInterval(timer)
    clearTimeout(waiting)
  }
  h2.once('close', stop)
}

/**
 * TCP keepalive on an HBONE connection's socket: after `intervalMs` of silence the kernel
 * probes the peer every second (libuv sets TCP_KEEPINTVL 1 s, TCP_KEEPCNT 10), and a peer
 * that does not answer ends the connection with an error. It covers what PINGs cannot: a
 * session that is closing, and its last tunnels, on a peer that went away meanwhile.
 */
export function tcpKeepalive(socket: { setKeepAlive(enable: boolean, initialDelay: number): unknown }, s: KeepaliveSettings): void {
  socket.setKeepAlive(true, s.intervalMs)
}
