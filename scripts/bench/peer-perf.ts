// Where a process's CPU goes by native component, from `perf record` (Debian's linux-perf):
// the kernel, OpenSSL, nghttp2, llhttp, libuv, node's C++, V8 (builtins, runtime, GC),
// JIT-compiled JavaScript, libc. node --cpu-prof cannot tell these apart: time spent in native
// code outside JavaScript (a socket read that decrypts TLS and parses HTTP/2 frames before any
// JavaScript runs) is one "(program)" node, and a write that encrypts is one "writeBuffer".
// node's binary carries its symbols, OpenSSL, nghttp2, llhttp and libuv linked in; HAProxy's
// OpenSSL is libssl/libcrypto. Self time only (no call graphs): cheap, and enough to split.
import { execFile, spawn } from 'node:child_process'
import { promisify } from 'node:util'

const execFileP = promisify(execFile)

export interface PerfShare { name: string; share: number }
export interface PerfSummary { categories: PerfShare[]; top: PerfShare[] }

export async function perfWorks(): Promise<boolean> {
  return execFileP('perf', ['stat', '-e', 'task-clock', 'true']).then(() => true, () => false)
}

/** Samples `pid` (all its threads) at 999 Hz for `seconds` into `file`; resolves when perf has written it. */
export function perfRecord(pid: number, seconds: number, file: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const p = spawn('perf', ['record', '-q', '-F', '999', '-p', String(pid), '-o', file, '--', 'sleep', String(seconds)], { stdio: ['ignore', 'ignore', 'pipe'] })
    let err = ''
    p.stderr.on('data', (d: Buffer) => { err += d.toString() })
    p.once('error', reject)
    p.once('exit', (code) => (code === 0 ? resolve() : reject(new Error(`perf record -p ${pid} exited ${code}: ${err.trim()}`))))
  })
}

const OPENSSL = /^(ossl_|OSSL_|EVP_|evp_|SSL_|ssl_|ssl3_|tls_|tls1_|tls13_|statem_|OPENSSL_|CRYPTO_|ERR_|BIO_|bio_|BN_|bn_|EC_|ec_|ecp_|ECDSA|ecdsa|X509|x509|ASN1|asn1|aes|AES|_aesni|aesni|gcm_|GCM|sha\d|SHA\d|x25519|X25519|HMAC|RAND|rand_|ChaCha|chacha|Poly1305|poly1305|OBJ_|PEM_|PACKET_|WPACKET|HKDF|kdf_|lh_|sk_|ENGINE|engine_|ct_base|ossl)/
const V8_GC = /v8::internal::(Heap|Scavenger|MarkCompact|MinorMarkSweep|MinorMarkCompact|Sweeper|Marking|ConcurrentMarking|MemoryAllocator|PagedSpace|NewSpace|SemiSpace|Evacuat|Young|GCTracer|MemoryChunk|PageMetadata|MutablePageMetadata|LocalHeap|RememberedSet|SlotSet|.*Visitor)|^cppgc::|heap::base::/

function category(dso: string, kind: string, sym: string): string {
  if (kind === 'k') return 'kernel'
  if (/^libcrypto|^libssl/.test(dso)) return 'TLS (OpenSSL)'
  if (/^libc[.-]|^ld-linux/.test(dso)) return 'libc (memcpy, malloc, locks)'
  if (dso === 'haproxy') return 'HAProxy'
  if (dso === '[unknown]' || dso.startsWith('perf-') || dso.startsWith('[JIT]') || /^0x[0-9a-f]+$/.test(sym)) return 'JavaScript (JIT code)'
  if (dso !== 'node') return `other (${dso})`
  if (/^nghttp2_/.test(sym)) return 'HTTP/2 framing (nghttp2)'
  if (/^llhttp|^llparse/.test(sym)) return 'HTTP/1 parser (llhttp)'
  if (/^uv_|^uv__/.test(sym)) return 'libuv'
  if (OPENSSL.test(sym)) return 'TLS (OpenSSL)'
  if (/^Builtins_|^Builtin:/.test(sym)) return 'V8 builtins (interpreter, ICs, stubs)'
  if (V8_GC.test(sym)) return 'V8 GC'
  if (/^v8::|^v8_|^Runtime_/.test(sym)) return 'V8 runtime'
  if (/^node::/.test(sym)) return "node's C++ (stream, TLS and HTTP/2 glue)"
  return 'node binary, other'
}

/** Shares of all samples by category, and the top symbols. */
export async function perfSummarise(file: string, top = 15): Promise<PerfSummary> {
  const { stdout } = await execFileP('perf', ['report', '-i', file, '--no-children', '--sort', 'dso,sym', '--stdio', '--percent-limit', '0.01', '-q'], { maxBuffer: 64 * 1024 * 1024 })
  const byCat = new Map<string, number>()
  const syms: PerfShare[] = []
  for (const line of stdout.split('\n')) {
    // The dso may hold spaces ("[JIT] tid 123"); the first " [x] " after it is the kind.
    const m = /^\s*([\d.]+)%\s+(.+?)\s+\[(.)\]\s+(.+?)\s*$/.exec(line)
    if (!m) continue
    const share = Number(m[1]) / 100
    const cat = category(m[2]!, m[3]!, m[4]!)
    byCat.set(cat, (byCat.get(cat) ?? 0) + share)
    syms.push({ name: `${m[4]} (${m[2]})`, share })
  }
  const round = (x: number): number => Math.round(x * 1000) / 1000
  return {
    categories: [...byCat].sort((a, b) => b[1] - a[1]).map(([name, share]) => ({ name, share: round(share) })),
    top: syms.sort((a, b) => b.share - a.share).slice(0, top).map((s) => ({ name: s.name, share: round(s.share) })),
  }
}
