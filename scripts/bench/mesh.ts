// The mesh path against direct TCP on the same two namespace hosts, interleaved in one run:
// one 1 GiB connection (throughput), and new connections per second. Each host runs the
// real `hostmesh run` with its own node CA and real iptables capture. Needs root.
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { meshNodeConfigs, untilReady } from '../netns/mesh-nodes.ts'
import { withTestNet } from '../netns/hosts.ts'
import { median } from './stats.ts'

const here = (f: string): string => new URL(f, import.meta.url).pathname
const CLI = here('../../daemon/cli.ts')
const NODE = process.execPath
const V = 'apiVersion: hostmesh.io/v1alpha1\n'
const POLICY = [
  `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [10.77.0.11]}\n`,
  `${V}kind: Node\nmetadata: {name: node-b}\nspec: {addresses: [10.77.0.12]}\n`,
  `${V}kind: Workload\nmetadata: {name: client, namespace: bench}\nspec: {node: node-a, serviceAccount: client, match: {uid: 3001}}\n`,
  `${V}kind: Workload\nmetadata: {name: server, namespace: bench, labels: {app: server}}\nspec: {node: node-b, serviceAccount: server, match: {uid: 3002}, ports: [{port: 9000}, {port: 9002}]}\n`,
  `${V}kind: Service\nmetadata: {name: server, namespace: bench}\nspec: {addresses: [10.96.1.1], ports: [{name: bulk, port: 9000}, {name: conn, port: 9002}], selector: {app: server}}\n`,
].join('---\n')

interface Bulk { bytes: number; seconds: number; mbps: number; error?: string }
interface Conns { conns: number; failed: number; rate: number; p50ms: number; p99ms: number }

export async function benchMesh(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-bench-mesh-'))
  try {
    mkdirSync(join(dir, 'policy.d'))
    writeFileSync(join(dir, 'policy.d', 'policy.yaml'), POLICY)
    await withTestNet({ hosts: ['node-a', 'node-b'] }, async (net) => {
      const configs = await meshNodeConfigs(net.hosts, dir, { policyDir: join(dir, 'policy.d'), ipv6: false, extra: 'logLevel: warn\n' })
      const daemons = net.hosts.map((h) => [h, h.spawn([NODE, CLI, 'run', '--config', configs.get(h.name)!])] as const)
      for (const [h, daemon] of daemons) await untilReady(h, daemon)
      const [a, b] = [net.host('node-a'), net.host('node-b')]
      await b.spawn([NODE, here('./mesh-server.ts'), 'sink:9000', 'sink:9001', 'byte:9002', 'byte:9003'], { uid: 3002, gid: 3002 }).waitFor(/bench server ready/)
      // Direct: root on node-a (hostmesh's own uid, never captured) to ports no rule redirects.
      const bulk = async (uid: number, target: string, port: number): Promise<Bulk> => JSON.parse(await a.mustExec([NODE, here('./bulk-client.ts'), target, String(port), String(2 ** 30)], { uid, gid: uid, timeoutMs: 150_000 })) as Bulk
      const conns = async (uid: number, target: string, port: number): Promise<Conns> => JSON.parse(await a.mustExec([NODE, here('./connect-client.ts'), target, String(port), '3000', '16'], { uid, gid: uid, timeoutMs: 60_000 })) as Conns
      await bulk(3001, '10.96.1.1', 9000) // warm-up: the HBONE session
      const rounds: Array<{ direct: Bulk; mesh: Bulk; directC: Conns; meshC: Conns }> = []
      for (let i = 0; i < 3; i++) {
        rounds.push({ direct: await bulk(0, b.ipv4, 9001), mesh: await bulk(3001, '10.96.1.1', 9000), directC: await conns(0, b.ipv4, 9003), meshC: await conns(3001, '10.96.1.1', 9002) })
      }
      const m = (f: (r: (typeof rounds)[number]) => number): number => median(rounds.map(f))
      console.log('| path | 1 GiB, one connection: MB/s (median of 3) | new connections/s (median of 3) | conn p50 ms | conn p99 ms | failed |')
      console.log('|---|---|---|---|---|---|')
      console.log(`| direct TCP | ${m((r) => r.direct.mbps).toFixed(0)} | ${m((r) => r.directC.rate).toFixed(0)} | ${m((r) => r.directC.p50ms).toFixed(2)} | ${m((r) => r.directC.p99ms).toFixed(2)} | ${rounds.reduce((s, r) => s + r.directC.failed, 0)} |`)
      console.log(`| hostmesh (capture + HBONE mTLS + capture) | ${m((r) => r.mesh.mbps).toFixed(0)} | ${m((r) => r.meshC.rate).toFixed(0)} | ${m((r) => r.meshC.p50ms).toFixed(2)} | ${m((r) => r.meshC.p99ms).toFixed(2)} | ${rounds.reduce((s, r) => s + r.meshC.failed, 0)} |`)
      console.log(`mesh/direct: throughput ${(m((r) => r.mesh.mbps) / m((r) => r.direct.mbps)).toFixed(3)}, connection rate ${(m((r) => r.meshC.rate) / m((r) => r.directC.rate)).toFixed(3)}`)
    })
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

