// What a connection on the HBONE port looks like on the wire: its TLS records (RFC 8446 §5.1),
// the ClientHello's SNI, ALPN and offered versions, and the ServerHello's choice. Everything
// after the ServerHello is encrypted, which is the point: the payload is only seen as sizes.
import type { TcpStream } from './pcap.ts'

export interface TlsClientHello {
  readonly sni: string | null
  readonly alpn: readonly string[]
  readonly versions: readonly string[]
}

export interface TlsServerHello {
  readonly version: string
  readonly cipher: string
}

export interface TlsDirection {
  /** Records by content type name (handshake, change_cipher_spec, alert, application_data). */
  readonly records: Readonly<Record<string, number>>
  /** Bytes carried in application_data records: all traffic after the handshake in TLS 1.3. */
  readonly applicationDataBytes: number
}

export interface TlsConnection {
  readonly client: string
  readonly server: string
  /** The capture has the connection from its SYN, so the handshake is in it. */
  readonly fromStart: boolean
  readonly clientHello: TlsClientHello | null
  readonly serverHello: TlsServerHello | null
  readonly toServer: TlsDirection
  readonly toClient: TlsDirection
}

const CONTENT_TYPES: Readonly<Record<number, string>> = { 20: 'change_cipher_spec', 21: 'alert', 22: 'handshake', 23: 'application_data' }
const VERSIONS: Readonly<Record<number, string>> = { 0x0301: 'TLS 1.0', 0x0302: 'TLS 1.1', 0x0303: 'TLS 1.2', 0x0304: 'TLS 1.3' }
const CIPHERS: Readonly<Record<number, string>> = { 0x1301: 'TLS_AES_128_GCM_SHA256', 0x1302: 'TLS_AES_256_GCM_SHA384', 0x1303: 'TLS_CHACHA20_POLY1305_SHA256' }
const EXT_SERVER_NAME = 0
const EXT_ALPN = 16
const EXT_SUPPORTED_VERSIONS = 43

const hostPort = (ip: string, port: number): string => (ip.includes(':') ? `[${ip}]:${port}` : `${ip}:${port}`)
const version = (v: number): string => VERSIONS[v] ?? `0x${v.toString(16).padStart(4, '0')}`

/** Every TCP connection whose server side is `port`, with both directions read as TLS. */
export function tlsConnections(streams: readonly TcpStream[], port: number): TlsConnection[] {
  const out: TlsConnection[] = []
  for (const up of streams.filter((s) => s.dport === port)) {
    const down = streams.find((s) => s.src === up.dst && s.sport === up.dport && s.dst === up.src && s.dport === up.sport)
    const toServer = records(up.fromStart ? up.data : Buffer.alloc(0))
    const toClient = records(down?.fromStart ? down.data : Buffer.alloc(0))
    out.push({
      client: hostPort(up.src, up.sport),
      server: hostPort(up.dst, up.dport),
      fromStart: up.fromStart && (down?.fromStart ?? false),
      clientHello: toServer.firstHandshake ? clientHello(toServer.firstHandshake) : null,
      serverHello: toClient.firstHandshake ? serverHello(toClient.firstHandshake) : null,
      toServer: toServer.direction,
      toClient: toClient.direction,
    })
  }
  return out
}

/** How many times `needle` occurs in the streams (overlaps not counted twice). */
export function occurrences(streams: readonly TcpStream[], needle: string): number {
  const n = Buffer.from(needle)
  let count = 0
  for (const s of streams) {
    for (let at = s.data.indexOf(n); at >= 0; at = s.data.indexOf(n, at + n.length)) count++
  }
  return count
}

function records(data: Buffer): { direction: TlsDirection; firstHandshake: Buffer | null } {
  const counts: Record<string, number> = {}
  let applicationDataBytes = 0
  let firstHandshake: Buffer | null = null
  // A record: type (1), legacy version (2), length (2), then the fragment.
  for (let at = 0; at + 5 <= data.length;) {
    const type = data[at]!
    const length = data.readUInt16BE(at + 3)
    const name = CONTENT_TYPES[type]
    if (!name || length > 16384 + 256) break // not TLS (or lost sync): stop reading
    counts[name] = (counts[name] ?? 0) + 1
    const fragment = data.subarray(at + 5, at + 5 + length)
    if (name === 'application_data') applicationDataBytes += length
    if (name === 'handshake' && firstHandshake === null) firstHandshake = fragment
    at += 5 + length
  }
  return { direction: { records: counts, applicationDataBytes }, firstHandshake }
}

/** The extensions of a Client/ServerHello, after its fixed fields end at `at`. */
function extensions(msg: Buffer, at: number): Map<number, Buffer> {
  const out = new Map<number, Buffer>()
  if (at + 2 > msg.length) return out
  const end = Math.min(msg.length, at + 2 + msg.readUInt16BE(at))
  for (let p = at + 2; p + 4 <= end;) {
    const len = msg.readUInt16BE(p + 2)
    out.set(msg.readUInt16BE(p), msg.subarray(p + 4, p + 4 + len))
    p += 4 + len
  }
  return out
}

function clientHello(hs: Buffer): TlsClientHello | null {
  // Handshake header: type 1 (ClientHello), length (3). Body: version (2), random (32),
  // session id (1 + n), cipher suites (2 + n), compression methods (1 + n), extensions.
  if (hs[0] !== 1 || hs.length < 39) return null
  const body = hs.subarray(4)
  let at = 34
  at += 1 + body[at]!
  at += 2 + body.readUInt16BE(at)
  at += 1 + body[at]!
  const ext = extensions(body, at)
  const sniExt = ext.get(EXT_SERVER_NAME)
  // server_name list (2), then type (1) = host_name, length (2), name.
  const sni = sniExt && sniExt.length >= 5 && sniExt[2] === 0 ? sniExt.subarray(5, 5 + sniExt.readUInt16BE(3)).toString('latin1') : null
  const alpn: string[] = []
  const alpnExt = ext.get(EXT_ALPN)
  for (let p = 2; alpnExt && p < alpnExt.length; p += 1 + alpnExt[p]!) alpn.push(alpnExt.subarray(p + 1, p + 1 + alpnExt[p]!).toString('latin1'))
  const versions: string[] = []
  const sv = ext.get(EXT_SUPPORTED_VERSIONS)
  for (let p = 1; sv && p + 2 <= sv.length; p += 2) versions.push(version(sv.readUInt16BE(p)))
  return { sni, alpn, versions }
}

function serverHello(hs: Buffer): TlsServerHello | null {
  // type 2 (ServerHello); body: version (2), random (32), session id (1 + n), cipher (2),
  // compression (1), extensions. TLS 1.3 puts its real version in supported_versions.
  if (hs[0] !== 2 || hs.length < 42) return null
  const body = hs.subarray(4)
  let at = 34
  at += 1 + body[at]!
  const cipher = body.readUInt16BE(at)
  const sv = extensions(body, at + 3).get(EXT_SUPPORTED_VERSIONS)
  return { version: version(sv && sv.length >= 2 ? sv.readUInt16BE(0) : body.readUInt16BE(0)), cipher: CIPHERS[cipher] ?? `0x${cipher.toString(16).padStart(4, '0')}` }
}
