// HBONE `:authority` values: "ip:port", IPv6 in brackets.
import { isIP } from 'node:net'
import { canonicalIp } from '../../policy/ip.ts'

export function formatAuthority(ip: string, port: number): string {
  return isIP(ip) === 6 ? `[${ip}]:${port}` : `${ip}:${port}`
}

/** The address and port of an authority, or undefined if it is not ip:port. */
export function parseAuthority(authority: string | undefined): { ip: string; port: number } | undefined {
  if (!authority) return undefined
  const m = /^\[([0-9a-fA-F:.]+)\]:(\d{1,5})$/.exec(authority) ?? /^(\d{1,3}(?:\.\d{1,3}){3}):(\d{1,5})$/.exec(authority)
  if (!m || isIP(m[1]!) === 0) return undefined
  const port = Number(m[2])
  return port >= 1 && port <= 65535 ? { ip: canonicalIp(m[1]!), port } : undefined
}
