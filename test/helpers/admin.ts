// Reading a daemon's admin port and socket from tests, with bounded waits.
import { request, type IncomingHttpHeaders } from 'node:http'

export async function get(port: number, path: string): Promise<{ status: number; body: string }> {
  const res = await fetch(`http://127.0.0.1:${port}${path}`)
  return { status: res.status, body: await res.text() }
}

/** Polls `check` every `everyMs` (50) for up to `timeoutMs` (5 s). */
export async function until(check: () => boolean | Promise<boolean>, what: string, timeoutMs = 5000, everyMs = 50): Promise<void> {
  for (let i = 0; i < timeoutMs / everyMs; i++) {
    if (await check()) return
    await new Promise((r) => setTimeout(r, everyMs))
  }
  throw new Error(`timed out waiting for ${what}`)
}

export interface AdminAnswer<T> {
  readonly status: number
  readonly headers: IncomingHttpHeaders
  /** JSON answers parsed; others as text. */
  readonly body: T
}

/**
 * One request to an admin listener: `to` is a port on 127.0.0.1, or the path of the admin
 * socket. node:http, not fetch: fetch can neither set Host nor use a unix socket.
 */
export function adminRequest<T = unknown>(to: number | string, path: string, opts: { method?: string; headers?: Record<string, string> } = {}): Promise<AdminAnswer<T>> {
  const where = typeof to === 'number' ? { host: '127.0.0.1', port: to } : { socketPath: to }
  return new Promise((resolve, reject) => {
    const req = request({ ...where, path, method: opts.method ?? 'GET', headers: opts.headers }, (res) => {
      let text = ''
      res.setEncoding('utf8')
      res.on('data', (chunk: string) => { text += chunk })
      res.on('end', () => {
        const json = /^application\/json/.test(res.headers['content-type'] ?? '')
        resolve({ status: res.statusCode!, headers: res.headers, body: (json ? JSON.parse(text) : text) as T })
      })
      res.on('error', reject)
    })
    req.on('error', reject)
    req.end()
  })
}
