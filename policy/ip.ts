// One spelling per address, so lookups keyed by address never miss on "fd00::0011" vs
// "fd00::11", or on an IPv4 client seen as ::ffff:10.0.0.1 by a dual-stack socket.
import { isIP } from 'node:net'

export function canonicalIp(ip: string): string {
  const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/i.exec(ip)
  if (mapped) return mapped[1]!
  if (isIP(ip) !== 6) return ip
  return new URL(`http://[${ip}]/`).hostname.slice(1, -1)
}

/** The key of an (address, port) pair in snapshot lookups. */
export function addressKey(ip: string, port: number): string {
  return `${canonicalIp(ip)}#${port}`
}
