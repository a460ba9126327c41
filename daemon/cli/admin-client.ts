// Reading a running daemon's admin port from the CLI: JSON over HTTP with a bounded wait, and
// one clear error naming the URL when the daemon does not answer or answers something else.
import type { NodeConfig } from '../config/schema.ts'
import { formatAuthority } from '../tunnel/authority.ts'
import { AdminRequestError } from './errors.ts'

export const DEFAULT_ADMIN_URL = 'http://127.0.0.1:15000'
export const ADMIN_TIMEOUT_MS = 5000

/**
 * GET `path` from the admin port at `base`; `ok` lists the statuses that are answers (/ready
 * is 503 while not ready). Anything else, or no answer, is an AdminRequestError.
 */
export async function getAdminJson<T>(base: URL, path: string, ok: readonly number[] = [200], timeoutMs = ADMIN_TIMEOUT_MS): Promise<{ status: number; body: T }> {
  const url = new URL(path, base)
  let res: Response
  try {
    res = await fetch(url, { signal: AbortSignal.timeout(timeoutMs) })
  } catch (err) {
    const why = (err as Error).name === 'TimeoutError' ? `no answer within ${timeoutMs / 1000} s` : errorCode(err)
    throw new AdminRequestError(url.href, `cannot reach the hostmesh admin port at ${base.origin} (${why}); is the daemon running? (systemctl status hostmesh; use --admin URL or --config FILE for another address)`, { cause: err })
  }
  const text = await res.text()
  let body: unknown
  try {
    body = JSON.parse(text)
  } catch (err) {
    throw new AdminRequestError(url.href, `${url.href} answered ${res.status} with something that is not JSON; is ${base.origin} a hostmesh admin port?`, { cause: err })
  }
  if (!ok.includes(res.status)) {
    const error = (body as { error?: unknown } | null)?.error
    throw new AdminRequestError(url.href, `${url.href} answered ${res.status}${typeof error === 'string' ? `: ${error}` : ''}`)
  }
  return { status: res.status, body: body as T }
}

/** ECONNREFUSED and the like, from fetch's cause chain; the message when there is no code. */
function errorCode(err: unknown): string {
  const cause = (err as { cause?: { code?: string; message?: string } }).cause
  return cause?.code ?? cause?.message ?? (err as Error).message
}

/** This host's way to its daemon's admin port, from the node config. */
export function adminUrlOf(config: NodeConfig): URL {
  // A wildcard bind (admin.allowRemote) is reached on loopback from this host.
  const address = config.admin.address === '0.0.0.0' ? '127.0.0.1' : config.admin.address === '::' ? '::1' : config.admin.address
  return new URL(`http://${formatAuthority(address, config.ports.admin)}`)
}
