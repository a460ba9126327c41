// Reads what tcpdump wrote (`-w`, classic pcap, Ethernet) into TCP byte streams, one per
// direction, reassembled by sequence number: enough to read TLS records and search payloads
// without tshark, which a fresh machine does not have.

export interface TcpStream {
  readonly src: string
  readonly sport: number
  readonly dst: string
  readonly dport: number
  /** The SYN was captured, so `data` starts at the stream's first byte. */
  readonly fromStart: boolean
  /** A sequence gap: bytes after it are missing from `data`. */
  readonly gap: boolean
  readonly data: Buffer
}

export interface Capture {
  readonly packets: number
  readonly streams: readonly TcpStream[]
}

interface Segment { readonly seq: number; readonly syn: boolean; readonly payload: Buffer }

const LINKTYPE_ETHERNET = 1

export function readPcap(file: Buffer): Capture {
  if (file.length < 24) throw new Error(`not a pcap file (${file.length} bytes)`)
  const magic = file.readUInt32LE(0)
  const le = magic === 0xa1b2c3d4 || magic === 0xa1b23c4d
  if (!le && file.readUInt32BE(0) !== 0xa1b2c3d4 && file.readUInt32BE(0) !== 0xa1b23c4d) throw new Error('not a pcap file (bad magic)')
  const u32 = (at: number): number => (le ? file.readUInt32LE(at) : file.readUInt32BE(at))
  const linkType = u32(20) & 0xffff
  if (linkType !== LINKTYPE_ETHERNET) throw new Error(`pcap link type ${linkType}: only Ethernet (1) is read`)
  const flows = new Map<string, { src: string; sport: number; dst: string; dport: number; segments: Segment[] }>()
  let packets = 0
  // Each record: 16-byte header (ts_sec, ts_frac, incl_len, orig_len), then the frame.
  for (let at = 24; at + 16 <= file.length && packets < 1_000_000; packets++) {
    const len = u32(at + 8)
    const frame = file.subarray(at + 16, Math.min(file.length, at + 16 + len))
    at += 16 + len
    const seg = tcpOf(frame)
    if (!seg) continue
    const key = `${seg.src}|${seg.sport}|${seg.dst}|${seg.dport}`
    let flow = flows.get(key)
    if (!flow) flows.set(key, (flow = { src: seg.src, sport: seg.sport, dst: seg.dst, dport: seg.dport, segments: [] }))
    flow.segments.push({ seq: seg.seq, syn: seg.syn, payload: seg.payload })
  }
  return { packets, streams: [...flows.values()].map((f) => ({ src: f.src, sport: f.sport, dst: f.dst, dport: f.dport, ...reassemble(f.segments) })) }
}

function tcpOf(frame: Buffer): { src: string; dst: string; sport: number; dport: number; seq: number; syn: boolean; payload: Buffer } | undefined {
  if (frame.length < 14) return undefined
  const etherType = frame.readUInt16BE(12)
  let ip = frame.subarray(14)
  let src: string
  let dst: string
  if (etherType === 0x0800 && ip.length >= 20 && ip[9] === 6) {
    ip = ip.subarray(0, Math.min(ip.length, ip.readUInt16BE(2))) // drop Ethernet padding
    src = [...ip.subarray(12, 16)].join('.')
    dst = [...ip.subarray(16, 20)].join('.')
    ip = ip.subarray((ip[0]! & 0x0f) * 4)
  } else if (etherType === 0x86dd && ip.length >= 40 && ip[6] === 6) {
    src = ipv6(ip.subarray(8, 24))
    dst = ipv6(ip.subarray(24, 40))
    ip = ip.subarray(40, 40 + ip.readUInt16BE(4))
  } else return undefined
  if (ip.length < 20) return undefined
  return { src, dst, sport: ip.readUInt16BE(0), dport: ip.readUInt16BE(2), seq: ip.readUInt32BE(4), syn: (ip[13]! & 0x02) !== 0, payload: ip.subarray((ip[12]! >> 4) * 4) }
}

function ipv6(b: Buffer): string {
  const groups = Array.from({ length: 8 }, (_, i) => b.readUInt16BE(i * 2).toString(16))
  return groups.join(':').replace(/(^|:)0(:0)+(:|$)/, '::')
}

/** Orders segments by sequence number (modulo 2^32), drops retransmitted bytes, notes gaps. */
function reassemble(segments: readonly Segment[]): { fromStart: boolean; gap: boolean; data: Buffer } {
  const syn = segments.find((s) => s.syn)
  const withData = segments.filter((s) => s.payload.length > 0)
  const base = syn ? (syn.seq + 1) >>> 0 : withData[0]?.seq ?? 0
  const ordered = withData.map((s) => ({ rel: (s.seq - base) >>> 0, payload: s.payload })).sort((a, b) => a.rel - b.rel)
  const parts: Buffer[] = []
  let length = 0
  let gap = false
  for (const s of ordered) {
    if (s.rel > length) {
      gap = true
      break
    }
    const fresh = s.payload.subarray(length - s.rel)
    if (fresh.length > 0) {
      parts.push(fresh)
      length += fresh.length
    }
  }
  return { fromStart: syn !== undefined, gap, data: Buffer.concat(parts) }
}
