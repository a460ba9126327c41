// The workload's port, as plain TCP from the daemon (never captured). Abandoned when the
// downstream goes first (a stream reset, a client that left): nothing is dialled for a
// connection nobody waits for. Fails: the entry answers (503 UF).
import type { Socket } from 'node:net'
import type { Stage } from '../../../base/stage.ts'
import { dialTcp } from '../../net/dial.ts'
import type { InboundConnection } from '../inbound-connection.ts'

export function dial(connectTimeoutMs: number): Stage<InboundConnection> {
  return async (x, next) => {
    const { conn } = x.to!
    const down = x.entry.downstream
    if (x.entry.settle) await x.entry.settle()
    const gone = (): void => {
      x.release?.()
      x.entry.refuse({ kind: 'gone' })
    }
    if (down.destroyed) return gone()
    const abandoned = new AbortController()
    const abandon = (): void => abandoned.abort(new Error('the downstream closed while connecting'))
    down.once('close', abandon)
    let upstream: Socket
    try {
      upstream = await dialTcp(conn.address, conn.port, connectTimeoutMs, abandoned.signal)
    } catch (err) {
      if (abandoned.signal.aborted) return gone()
      down.off('close', abandon)
      const e = err as NodeJS.ErrnoException
      x.release?.()
      return x.entry.refuse({ kind: 'unreachable', error: e.code ?? e.message })
    }
    down.off('close', abandon)
    if (down.destroyed) {
      upstream.destroy()
      return gone()
    }
    x.upstream = upstream
    await next()
  }
}
