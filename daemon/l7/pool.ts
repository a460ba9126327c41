// Keep-alive upstream connections for requests, pooled per key: on the source side one key is
// (source workload, endpoint), and a connection is one HBONE CONNECT stream to that endpoint;
// on the destination side the key is the local workload's address, and a connection is TCP.
// HTTP/1.1 goes through an undici Pool whose connections come from the caller's connect
// function; HTTP/2 through one h2c session per key. A request usually costs no new stream.
import type { Agent } from 'node:http'
import http2, { type ClientHttp2Session } from 'node:http2'
import { createRequire } from 'node:module'
import { Socket } from 'node:net'
import type { Duplex } from 'node:stream'
import type { Dispatcher, Pool as UndiciPool } from 'undici'
import http from '../net/node-http.ts'
import { withoutEmptyWrites } from './empty-writes.ts'

// undici's Pool and its request API on their own: the package's index also loads fetch,
// WebSocket, the cache and mock agents and more (109 modules, 2.8 MB of every daemon's heap),
// none of which the daemon runs. The one thing the index does that the daemon needs is to put
// the API (request(), used by mirror-send.ts) on every dispatcher, which is done here the same
// way. test/unit/run/startup-footprint.test.ts keeps the index out.
const undici = createRequire(import.meta.url)
const Pool = undici('undici/lib/dispatcher/pool.js') as typeof UndiciPool
Object.assign((undici('undici/lib/dispatcher/dispatcher.js') as { prototype: object }).prototype, undici('undici/lib/api/index.js'))

export type Connect = () => Promise<Duplex>

/** How long an idle upstream connection is kept: below common server keep-alive timeouts (node's is 5 s) would churn; Envoy's idle_timeout is 1 h. */
const IDLE_MS = 60_000
/** Pools with nothing open are dropped this often, so endpoints that come and go leave nothing behind. */
const SWEEP_MS = 30_000

/**
 * An Agent for one request on a connection of its own, made by `connect` (an HBONE stream or a
 * TCP socket) and never kept: an Upgrade takes it over, or `OPTIONS *` is its only request.
 */
class OneShotAgent extends http.Agent {
  readonly #connect: Connect
  constructor(connect: Connect) {
    super({ keepAlive: false })
    this.#connect = connect
  }

  override createConnection(_opts: unknown, done: (err: Error | null, socket?: Duplex) => void): undefined {
    this.#connect().then((s) => done(null, withoutEmptyWrites(noDelay(s))), (err: Error) => done(err))
    return undefined
  }
}

/**
 * A TCP connection without Nagle's algorithm, as node's own Agent and Envoy make them: a body
 * written in two pieces (a chunked request's last chunk) otherwise waits for the peer's delayed
 * ACK, 40 ms or more per request.
 */
function noDelay(s: Duplex): Duplex {
  if (s instanceof Socket) s.setNoDelay(true)
  return s
}

/** An agent for one connection that is not pooled afterwards (an Upgrade takes it over). */
export function oneShotAgent(connect: Connect): Agent {
  return new OneShotAgent(connect)
}

/** The Pool's connector: undici's types promise a net.Socket; it uses only the Duplex API of what it gets. */
function connector(connect: Connect): (opts: unknown, done: (...r: [null, Socket] | [Error, null]) => void) => void {
  return (_opts, done) => {
    connect().then((s) => done(null, withoutEmptyWrites(noDelay(s)) as Socket), (err: Error) => done(err, null))
  }
}

interface H2Entry {
  session?: ClientHttp2Session
  opening?: Promise<ClientHttp2Session>
}

export class UpstreamPool {
  readonly #pools = new Map<string, UndiciPool>()
  readonly #h2 = new Map<string, H2Entry>()
  readonly #sweep: NodeJS.Timeout
  #destroyed = false

  constructor() {
    this.#sweep = setInterval(() => this.#prune(), SWEEP_MS).unref()
  }

  /** The HTTP/1.1 pool for `key` (`address` is its origin, `ip:port`); `connect` makes its connections. */
  dispatcher(key: string, address: string, connect: Connect): Dispatcher {
    let p = this.#pools.get(key)
    // After destroy() a request (a mirror copy still on its way) gets a pool that is destroyed too: it fails, and nothing stays open.
    if (!p && this.#destroyed) {
      const dead = new Pool(`http://${address}`, { connect: connector(connect) })
      void dead.destroy().catch(() => undefined)
      return dead
    }
    if (!p) this.#pools.set(key, (p = new Pool(`http://${address}`, { connect: connector(connect), keepAliveTimeout: IDLE_MS, keepAliveMaxTimeout: IDLE_MS, keepAliveTimeoutThreshold: 1000 })))
    return p
  }

  /** A live h2c session for `key`, opened over `connect` when there is none. */
  async session(key: string, authority: string, connect: Connect): Promise<ClientHttp2Session> {
    let e = this.#h2.get(key)
    if (!e) this.#h2.set(key, (e = {}))
    const s = e.session
    if (s && !s.closed && !s.destroyed) return s
    if (e.opening) return e.opening
    const entry = e
    entry.opening = connect().then((socket) => new Promise<ClientHttp2Session>((resolve, reject) => {
      const h2 = http2.connect(`http://${authority}`, { createConnection: () => noDelay(socket) })
      h2.on('error', () => undefined)
      h2.once('goaway', () => { if (entry.session === h2) delete entry.session })
      h2.once('close', () => { if (entry.session === h2) delete entry.session })
      h2.setTimeout(IDLE_MS, () => h2.close())
      h2.once('connect', () => {
        // Opened after destroy() (the end of a drain): nothing would own it.
        if (this.#destroyed) return void h2.destroy()
        entry.session = h2
        resolve(h2)
      })
      h2.once('error', reject)
      h2.once('close', () => reject(new Error('the upstream session closed before it was ready')))
    })).finally(() => { delete entry.opening })
    return entry.opening
  }

  /** Idle connections close; in-flight requests finish. */
  close(): void {
    clearInterval(this.#sweep)
    for (const p of this.#pools.values()) void p.close().catch(() => undefined)
    for (const e of this.#h2.values()) e.session?.close()
  }

  destroy(): void {
    this.#destroyed = true
    clearInterval(this.#sweep)
    for (const p of this.#pools.values()) void p.destroy().catch(() => undefined)
    for (const e of this.#h2.values()) e.session?.destroy()
    this.#pools.clear()
    this.#h2.clear()
  }

  /** For /stats and tests: pools, and connections open in them. */
  get size(): { pools: number; sessions: number } {
    let sessions = 0
    for (const e of this.#h2.values()) if (e.session) sessions++
    return { pools: this.#pools.size, sessions }
  }

  #prune(): void {
    for (const [k, p] of this.#pools) {
      const st = p.stats
      if (st.connected === 0 && st.pending === 0 && st.running === 0) {
        void p.destroy().catch(() => undefined)
        this.#pools.delete(k)
      }
    }
    for (const [k, e] of this.#h2) if (!e.session && !e.opening) this.#h2.delete(k)
  }
}
