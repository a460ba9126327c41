// `npm run bench [-- NAME]`. `capture` runs on real namespace hosts and needs root; the others do not.
// Each benchmark measures hostmesh against a baseline in the same run, interleaved, so the
// ratio holds even when the machine's absolute speed drifts. Results go in BENCHMARKS.md.
import { cpus, totalmem } from 'node:os'
import { withTestNet } from '../netns/hosts.ts'
import { benchCertMint, benchDaemonStart } from './certs.ts'
import { benchHttpClients } from './http-clients.ts'
import { benchHttpMesh } from './http-mesh.ts'
import { benchMemory } from './memory.ts'
import { benchMesh } from './mesh.ts'
import { benchPeer } from './peer.ts'
import { benchPolicyCompile, benchPolicyReload } from './policy.ts'
import { benchRelay } from './relay.ts'
import { benchWorkers } from './workers.ts'
import { benchWorkloadLimits } from './workload-limits.ts'
import { median as med } from './stats.ts'

const here = (f: string): string => new URL(f, import.meta.url).pathname

interface Result { conns: number; failed: number; seconds: number; rate: number; p50ms: number; p99ms: number }

// Words after the name go to that benchmark (`npm run bench -- http-mesh --only stages`).
const benches: Record<string, (args: readonly string[]) => Promise<void>> = {
  /** Reload pipeline cost for 1,000 and 10,000 services with routes. Goal: 10,000 in <= 1 s. */
  'policy-compile': benchPolicyCompile,
  /** File write → new snapshot in force, 1,000 services. Goal: p99 <= 100 ms. */
  'policy-reload': benchPolicyReload,
  /** Leaf certificate mint and publish time. Goal: mint p50 <= 5 ms. */
  'cert-mint': benchCertMint,
  /** `hostmesh run` spawn → /ready, with certificates for every local identity. */
  'daemon-start': benchDaemonStart,
  /** One daemon's RSS and V8 heap, as installed (dist/, hostmesh.service's environment) vs Node's defaults: idle, 1,000 req/s and peak over HBONE on loopback. */
  memory: benchMemory,
  /** Through the mesh vs direct TCP: 1 GiB over one connection, and new connections per second. */
  mesh: benchMesh,
  /** Upstream HTTP client for L7 (issue #12): req/s and p99 over TCP and CONNECT streams, and a client-abort leak test. */
  'http-clients': benchHttpClients,
  /** HTTP/1.1 keep-alive through the mesh (full L7 path on both hosts) vs direct: req/s, latency at 1,000 req/s, daemon CPU and RSS, CPU profile. */
  'http-mesh': benchHttpMesh,
  /** The per-workload limits per connection and per request (issue #15), in process: acquire + release, and admits() with its bucket kept vs looked up per call. */
  'workload-limits': benchWorkloadLimits,
  /** hostmesh vs an HAProxy mTLS pair vs direct on two namespace hosts (issue #14): bulk, new connections/s, keep-alive and HTTP req/s, latency at 1,000 req/s, proxy CPU per unit and RSS. Installs haproxy, iperf3, wrk, nginx. */
  peer: benchPeer,
  /** hostmesh with `workers: 1` vs `workers: 2` on the peer bench's two namespace hosts (issue #14): bulk (1 and 4 connections), new connections/s, keep-alive and HTTP req/s; clients and servers pinned to CPU 1; daemon CPU per unit, RSS, and how the work split across threads. */
  workers: benchWorkers,
  /** Node's own TLS + HTTP/2 relay on loopback, without hostmesh (issue #14, cost per byte): Gbit/s, CPU and collections per GB, and the knobs that might move them. */
  relay: benchRelay,
  /** Cost of capture: iptables REDIRECT + SO_ORIGINAL_DST per accepted connection vs a plain connect. */
  async capture() {
    await withTestNet({ hosts: 1 }, async (net) => {
      const h = net.hosts[0]!
      // The client must read this checkout, so it runs as root; the capture rule matches
      // root's uid here exactly as it matches a workload's uid in the mesh.
      await h.mustExec(['iptables', '-t', 'nat', '-A', 'OUTPUT', '-p', 'tcp', '-d', '10.96.0.10', '--dport', '80',
        '-m', 'owner', '--uid-owner', '0', '-j', 'REDIRECT', '--to-ports', '15001'])
      const server = h.spawn([process.execPath, here('./capture-server.ts'), '15001', '15002'])
      await server.waitFor(/bench server ready/)
      const client = async (target: string, port: number): Promise<Result> => {
        const out = await h.mustExec([process.execPath, here('./connect-client.ts'), target, String(port), '3000', '16'], { timeoutMs: 60_000 })
        return JSON.parse(out) as Result
      }
      const rounds: Array<{ direct: Result; captured: Result }> = []
      await client(h.ipv4, 15002) // warm-up
      for (let i = 0; i < 3; i++) rounds.push({ direct: await client(h.ipv4, 15002), captured: await client('10.96.0.10', 80) })
      await server.stop()
      const d = med(rounds.map((r) => r.direct.rate))
      const c = med(rounds.map((r) => r.captured.rate))
      console.log('| path | conn/s (median of 3) | p50 ms | p99 ms | failed |')
      console.log('|---|---|---|---|---|')
      for (const [name, key] of [['direct connect', 'direct'], ['REDIRECT + SO_ORIGINAL_DST', 'captured']] as const) {
        const rs = rounds.map((r) => r[key])
        console.log(`| ${name} | ${med(rs.map((r) => r.rate)).toFixed(0)} | ${med(rs.map((r) => r.p50ms)).toFixed(3)} | ${med(rs.map((r) => r.p99ms)).toFixed(3)} | ${rs.reduce((a, r) => a + r.failed, 0)} |`)
      }
      console.log(`captured/direct ratio: ${(c / d).toFixed(3)}`)
    })
  },
}

const NEEDS_ROOT = new Set(['capture', 'mesh', 'http-mesh', 'peer', 'workers'])
const names = process.argv[2] ? [process.argv[2]] : Object.keys(benches)
for (const name of names) {
  const bench = benches[name]
  if (!bench) {
    console.error(`unknown benchmark "${name}"; available: ${Object.keys(benches).join(', ')}`)
    process.exit(2)
  }
  if (NEEDS_ROOT.has(name) && process.getuid?.() !== 0) {
    console.error(`${name}: SKIPPED: runs on network-namespace hosts and needs root`)
    continue
  }
  console.log(`\n## ${name}\n`)
  await bench(process.argv.slice(3))
}
console.log(`\nmachine: ${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`)
