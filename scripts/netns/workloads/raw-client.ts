// A raw HTTP/1.1 client for the end-to-end robustness tests: sends byte strings exactly as
// given, each on a connection of its own, and reports every response it got (status codes in
// order, 1xx included) and whether and how the server closed the connection.
//   node raw-client.ts HOST PORT < {"entries": [{"id", "bytes" (base64), "dribbleMs"?, "maxMs"?}], "concurrency"?, "settleMs"?, "maxMs"?}
// One JSON line per entry: {id, statuses, closed ("fin" | "reset" | false), ms (to the close,
// or to the last response), firstResponseMs, head (the first bytes received, hex), error?}.
//   dribbleMs   send one byte every dribbleMs instead of one write (slowloris)
//   settleMs    after a final response, how long to wait for more (another response, a close)
//   maxMs       give up on an entry after this long (per entry, or for all)
import { connect } from 'node:net'

interface Entry {
  readonly id: string | number
  readonly bytes: string
  readonly dribbleMs?: number
  readonly maxMs?: number
}

interface Input {
  readonly entries: readonly Entry[]
  readonly concurrency?: number
  readonly settleMs?: number
  readonly maxMs?: number
}

const [host, port] = [process.argv[2]!, Number(process.argv[3])]
let text = ''
for await (const c of process.stdin) text += (c as Buffer).toString('utf8')
const input = JSON.parse(text) as Input
const settleMs = input.settleMs ?? 400
const maxMs = input.maxMs ?? 10_000

/** Response heads and bodies parsed from `buf` so far: the status of each complete response. */
function responses(buf: Buffer): { statuses: number[]; pendingFinal: boolean } {
  const statuses: number[] = []
  let at = 0
  for (;;) {
    const end = buf.indexOf('\r\n\r\n', at, 'latin1')
    if (end < 0) return { statuses, pendingFinal: at < buf.length }
    const head = buf.toString('latin1', at, end)
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(head)
    if (!m) return { statuses: [...statuses, -1], pendingFinal: false }
    const status = Number(m[1])
    let body = end + 4
    const length = /\r\ncontent-length:\s*(\d+)/i.exec(head)
    if (status < 200 || status === 204 || status === 304) {
      // no body
    } else if (/\r\ntransfer-encoding:\s*chunked/i.test(head)) {
      for (;;) {
        const line = buf.indexOf('\r\n', body, 'latin1')
        if (line < 0) return { statuses, pendingFinal: true }
        const size = parseInt(buf.toString('latin1', body, line), 16)
        if (size === 0) {
          // The trailer section: field lines, then an empty line.
          const p = line + 2
          if (buf.length < p + 2) return { statuses, pendingFinal: true }
          if (buf[p] === 13 && buf[p + 1] === 10) body = p + 2
          else {
            const trailerEnd = buf.indexOf('\r\n\r\n', p, 'latin1')
            if (trailerEnd < 0) return { statuses, pendingFinal: true }
            body = trailerEnd + 4
          }
          break
        }
        body = line + 2 + size + 2
        if (body > buf.length) return { statuses, pendingFinal: true }
      }
    } else if (length) {
      body += Number(length[1])
      if (body > buf.length) return { statuses, pendingFinal: true }
    } else {
      // Delimited by the close: complete only once the connection has ended.
      statuses.push(status)
      return { statuses, pendingFinal: false }
    }
    statuses.push(status)
    at = body
  }
}

function send(e: Entry): Promise<void> {
  return new Promise((resolve) => {
    const started = Date.now()
    const bytes = Buffer.from(e.bytes, 'base64')
    const s = connect({ host, port })
    let buf = Buffer.alloc(0)
    let firstResponseMs: number | undefined
    let lastResponseMs: number | undefined
    let settle: NodeJS.Timeout | undefined
    let dribble: NodeJS.Timeout | undefined
    let finished = false
    const finish = (closed: 'fin' | 'reset' | false, error?: string): void => {
      if (finished) return
      finished = true
      clearTimeout(settle)
      clearTimeout(limit)
      clearInterval(dribble)
      s.destroy()
      const { statuses } = responses(buf)
      const ms = closed ? Date.now() - started : lastResponseMs ?? Date.now() - started
      process.stdout.write(`${JSON.stringify({ id: e.id, statuses, closed, ms, firstResponseMs: firstResponseMs ?? null, head: buf.subarray(0, 24).toString('hex'), ...(error ? { error } : {}) })}\n`)
      resolve()
    }
    const limit = setTimeout(() => finish(false, 'timeout'), e.maxMs ?? maxMs)
    s.on('connect', () => {
      if (!e.dribbleMs) return void s.write(bytes)
      let i = 0
      dribble = setInterval(() => {
        if (i >= bytes.length || s.destroyed) return clearInterval(dribble)
        s.write(bytes.subarray(i, ++i))
      }, e.dribbleMs)
    })
    s.on('data', (c: Buffer) => {
      buf = Buffer.concat([buf, c])
      const r = responses(buf)
      const finals = r.statuses.filter((x) => x >= 200 || x < 0)
      if (firstResponseMs === undefined && finals.length > 0) firstResponseMs = Date.now() - started
      if (finals.length > 0 && !r.pendingFinal) {
        lastResponseMs = Date.now() - started
        clearTimeout(settle)
        settle = setTimeout(() => finish(false), settleMs)
      }
    })
    s.on('end', () => finish('fin'))
    s.on('error', (err: NodeJS.ErrnoException) => finish(err.code === 'ECONNRESET' || err.code === 'EPIPE' ? 'reset' : false, err.code ?? err.message))
  })
}

const queue = [...input.entries]
const workers = Array.from({ length: Math.max(1, Math.min(input.concurrency ?? 32, queue.length)) }, async () => {
  for (let e = queue.shift(); e; e = queue.shift()) await send(e)
})
await Promise.all(workers)
