// What the peer and workers benchmarks share (scripts/bench/peer.ts, workers.ts): the two
// namespace hosts' workloads, Services and policy, nginx's tree and config, and the node
// configs. node-a is the client host, node-b the server host.
import { chmodSync, chownSync, mkdirSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { meshNodeConfigs } from '../netns/mesh-nodes.ts'
import type { TestNet } from '../netns/hosts.ts'
import { nginxConf } from './nginx-conf.ts'

export const CLIENT_UID = 3001
export const SERVER_UID = 3002
export const L4_VIP = '10.96.2.1'
export const L7_VIP = '10.96.2.2'
export const IPERF_MESH = 5201 // captured on node-b: reached through hostmesh only
export const IPERF_PLAIN = 5202 // direct and the pair
export const HTTP_MESH_L4 = 8080
export const HTTP_PLAIN = 8081
export const HTTP_MESH_L7 = 8082
export const BODY = Buffer.alloc(1024, 'x')
export const LOG_LEVEL = 'warn' // no access log

const V = 'apiVersion: hostmesh.io/v1alpha1\n'
export const POLICY = [
  `${V}kind: Node\nmetadata: {name: node-a}\nspec: {addresses: [10.77.0.11]}\n`,
  `${V}kind: Node\nmetadata: {name: node-b}\nspec: {addresses: [10.77.0.12]}\n`,
  `${V}kind: Workload\nmetadata: {name: client, namespace: bench}\nspec: {node: node-a, serviceAccount: client, match: {uid: ${CLIENT_UID}}}\n`,
  `${V}kind: Workload\nmetadata: {name: server, namespace: bench, labels: {app: server}}\nspec: {node: node-b, serviceAccount: server, match: {uid: ${SERVER_UID}}, ports: [{port: ${IPERF_MESH}}, {port: ${HTTP_MESH_L4}}, {name: http, port: ${HTTP_MESH_L7}}]}\n`,
  `${V}kind: Service\nmetadata: {name: peer-l4, namespace: bench}\nspec: {addresses: [${L4_VIP}], ports: [{name: iperf, port: ${IPERF_MESH}}, {name: web, port: 80, targetPort: ${HTTP_MESH_L4}}], selector: {app: server}}\n`,
  `${V}kind: Service\nmetadata: {name: peer-l7, namespace: bench}\nspec: {addresses: [${L7_VIP}], ports: [{name: http, port: 80, protocol: http, targetPort: ${HTTP_MESH_L7}}], selector: {app: server}}\n`,
  `${V}kind: HTTPRoute\nmetadata: {name: peer-l7, namespace: bench}\nspec:\n  parentRefs: [{name: peer-l7, port: 80}]\n  rules: [{backendRefs: [{name: peer-l7, port: 80}]}]\n`,
].join('---\n')

export const NGINX_CONF = (dir: string): string => nginxConf(dir, [HTTP_MESH_L4, HTTP_PLAIN, HTTP_MESH_L7], { workerConnections: 4096 })

export interface PeerFiles {
  /** Scratch: certificates, node configs, the policy dir. */
  readonly dir: string
  /** Scratch the workload uids can enter (nginx's prefix). */
  readonly io: string
  readonly nginxDir: string
}

/** The scratch folders, nginx's tree (1 KiB file, config) and the policy, for a bench called `name`. */
export function peerFiles(name: string): PeerFiles {
  const dir = mkdtempSync(join(tmpdir(), `hostmesh-bench-${name}-`))
  const io = mkdtempSync(join(tmpdir(), `hostmesh-bench-${name}-io-`))
  chmodSync(io, 0o755)
  const nginxDir = join(io, 'nginx')
  for (const d of [nginxDir, join(nginxDir, 'tmp'), join(nginxDir, 'www')]) { mkdirSync(d); chownSync(d, SERVER_UID, SERVER_UID) }
  writeFileSync(join(nginxDir, 'www', '1k'), BODY, { mode: 0o644 })
  writeFileSync(join(nginxDir, 'nginx.conf'), NGINX_CONF(nginxDir), { mode: 0o644 })
  mkdirSync(join(dir, 'policy.d'))
  writeFileSync(join(dir, 'policy.d', 'policy.yaml'), POLICY)
  return { dir, io, nginxDir }
}

/**
 * The node configs of both hosts (`extra` appended), after node-a is set to reuse TIME_WAIT
 * ports: with `Connection: close` the side that closes first keeps its port in TIME_WAIT for
 * 60 s, and at thousands of connections/s node-a's 28k ephemeral ports run short for whatever
 * runs next, which then measures connect() hunting for a port. Load generators reuse them; so
 * does this namespace (not the machine).
 */
export async function peerNodeConfigs(net: TestNet, dir: string, extra = ''): Promise<Map<string, string>> {
  await net.host('node-a').mustExec(['sysctl', '-qw', 'net.ipv4.tcp_tw_reuse=1'])
  return meshNodeConfigs(net.hosts, dir, { policyDir: join(dir, 'policy.d'), ipv6: false, extra: `logLevel: ${LOG_LEVEL}\ndrainSeconds: 1\n${extra}` })
}
