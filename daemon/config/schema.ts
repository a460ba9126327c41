// The node settings file, /etc/hostmesh/hostmesh.yaml. Read once at start; policy lives
// elsewhere (policy.d) and is reloaded, this is not. Every object is strict: an unknown key
// is an error, because a typo that is silently ignored is a setting that silently is not set.
import { isIP } from 'node:net'
import { z } from 'zod'
import type { DeepReadonly } from '../../policy/freeze.ts'
import { duration } from '../../policy/schema/common.ts'
import { DEFAULT_L7_LIMITS } from '../l7/limits.ts'
import { DEFAULT_HBONE_LIMITS } from '../tunnel/admission.ts'
import { DEFAULT_WORKLOAD_CAPS } from '../limits/workload-caps.ts'
import { DEFAULT_PLAINTEXT_LIMITS } from '../limits/plaintext-limits.ts'
import { DEFAULT_ADMIN_MAX_CONNECTIONS } from '../admin/limits.ts'

export const DEFAULT_CONFIG_PATH = '/etc/hostmesh/hostmesh.yaml'

const port = z.number().int().min(1).max(65535)
const ipAddress = z.string().refine((s) => isIP(s) !== 0, { message: 'expected an IPv4 or IPv6 address' })
const absolutePath = z.string().min(1).refine((s) => s.startsWith('/'), { message: 'expected an absolute path (starting with /)' })
// RFC 1123 names, as Kubernetes node names are: the node name goes into certificates and
// metrics labels, so it is kept to characters that are safe in both.
const dnsName = z.string().max(253).regex(/^[a-z0-9]([-a-z0-9]*[a-z0-9])?(\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*$/, {
  message: 'expected a lowercase DNS name (a-z, 0-9, "-" and ".")',
})

export const LOG_LEVELS = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'] as const

// Checks that span several keys sit on the smallest object holding them, so they still run
// (and are reported together with) schema errors elsewhere in the file.
const addresses = z.array(ipAddress).min(1).max(2).refine(
  (list) => list.length < 2 || isIP(list[0]!) !== isIP(list[1]!),
  { message: 'expected at most one IPv4 and one IPv6 address' },
)

/** ztunnel's port numbers, so operators' habits carry over. */
export const DEFAULT_PORTS = Object.freeze({ admin: 15000, outboundBase: 15001, inboundPlaintext: 15006, hbone: 15008 })

/** The fixed listener ports, which per-workload outbound ports must skip. */
export function fixedPorts(p: { readonly admin: number; readonly inboundPlaintext: number; readonly hbone: number }): number[] {
  return [p.admin, p.inboundPlaintext, p.hbone]
}

const ports = z.strictObject({
  admin: port.default(DEFAULT_PORTS.admin),
  outboundBase: port.default(DEFAULT_PORTS.outboundBase),
  inboundPlaintext: port.default(DEFAULT_PORTS.inboundPlaintext),
  hbone: port.default(DEFAULT_PORTS.hbone),
}).superRefine((p, ctx) => {
  const seen = new Map<number, string>()
  for (const [name, value] of Object.entries(p)) {
    const other = seen.get(value)
    if (other) ctx.addIssue({ code: 'custom', path: [other], message: `port ${value} is used by both ports.${other} and ports.${name}; every port must be different` })
    seen.set(value, name)
  }
})

/** admin.socket's default; systemd's RuntimeDirectory=hostmesh makes /run/hostmesh. */
export const DEFAULT_ADMIN_SOCKET = '/run/hostmesh/admin.sock'

const admin = z.strictObject({
  // Loopback by default: the admin port has no authentication, like Envoy's.
  address: ipAddress.default('127.0.0.1'),
  allowRemote: z.boolean().default(false),
  // The admin API on a unix socket, created 0600: only the daemon's user and root can connect.
  // Requests that change state (POST /logging) are taken here only, never on the TCP port.
  socket: absolutePath.default(DEFAULT_ADMIN_SOCKET).refine((s) => Buffer.byteLength(s) <= 107, {
    message: 'a unix socket path is at most 107 bytes',
  }),
  // Any local uid reaches the port: a flood of it must not cost more than this many connections (the socket has as many of its own).
  maxConnections: z.number().int().min(1).max(100_000).default(DEFAULT_ADMIN_MAX_CONNECTIONS),
}).superRefine((a, ctx) => {
  if (!a.allowRemote && !isLoopback(a.address)) {
    ctx.addIssue({
      code: 'custom', path: ['address'],
      message: 'the admin port has no authentication, so it binds to loopback (127.0.0.1 or ::1) unless admin.allowRemote is true',
    })
  }
})

const count = (max: number) => z.number().int().min(1).max(max)
const perSecond = z.number().positive().max(1_000_000)
const D = DEFAULT_HBONE_LIMITS

// What any one peer may cost the HBONE port (docs/config.md "hbone"): a valid certificate
// does not make a peer polite. Compiled to daemon/tunnel/admission.ts's HboneLimits.
const hbone = z.strictObject({
  maxConnections: count(1_000_000).default(D.maxConnections),
  maxConnectionsPerSource: count(1_000_000).default(D.maxConnectionsPerSource),
  maxHandshakes: count(100_000).default(D.maxHandshakes),
  maxHandshakesPerSource: count(100_000).default(D.maxHandshakesPerSource),
  handshakeTimeout: duration.prefault('10s').refine((ms) => ms >= 100 && ms <= 120_000, { message: 'expected a timeout between 100ms and 2m' }),
  newConnectionsPerSecond: perSecond.default(D.newConnectionsPerSecond),
  newConnectionsBurst: count(1_000_000).default(D.newConnectionsBurst),
  maxTunnels: count(10_000_000).default(D.maxTunnels),
  maxTunnelsPerPeer: count(10_000_000).default(D.maxTunnelsPerPeer),
  refusedStreamsPerSecond: perSecond.default(D.refusedStreamsPerSecond),
  refusedStreamsBurst: count(1_000_000).default(D.refusedStreamsBurst),
  idleSessionTimeout: duration.prefault('10m').refine((ms) => ms >= 1000 && ms <= 86_400_000, { message: 'expected a timeout between 1s and 24h' }),
  // Both ends of every HBONE session (client pool too): a PING, and a deadline for its answer.
  keepaliveInterval: duration.prefault('10s').refine((ms) => ms >= 100 && ms <= 3_600_000, { message: 'expected an interval between 100ms and 1h' }),
  keepaliveTimeout: duration.prefault('10s').refine((ms) => ms >= 100 && ms <= 600_000, { message: 'expected a timeout between 100ms and 10m' }),
}).superRefine((h, ctx) => {
  for (const [per, all] of [['maxConnectionsPerSource', 'maxConnections'], ['maxHandshakesPerSource', 'maxHandshakes'], ['maxTunnelsPerPeer', 'maxTunnels']] as const) {
    if (h[per] > h[all]) ctx.addIssue({ code: 'custom', path: [per], message: `hbone.${per} (${h[per]}) is more than hbone.${all} (${h[all]})` })
  }
})

// What one request may cost on the L7 path (docs/config.md "http"), Envoy's defaults.
const http = z.strictObject({
  maxRequestHeadersKb: z.number().int().min(1).max(8192).default(DEFAULT_L7_LIMITS.maxRequestHeadersBytes / 1024),
  maxRequestHeaders: count(10_000).default(DEFAULT_L7_LIMITS.maxRequestHeaders),
  headerTimeout: duration.prefault('10s').refine((ms) => ms >= 100 && ms <= 600_000, { message: 'expected a timeout between 100ms and 10m' }),
  idleTimeout: duration.prefault('5m').refine((ms) => ms >= 1000 && ms <= 86_400_000, { message: 'expected a timeout between 1s and 24h' }),
  // Create a W3C traceparent for requests that arrive without one (the trace id goes in the access log).
  traceparent: z.boolean().default(true),
})

// What one local workload may hold at once on the outbound side (docs/config.md "outbound"),
// so a runaway workload cannot starve the others on the host. Compiled to
// daemon/limits/workload-limits.ts's WorkloadCaps.
const outbound = z.strictObject({
  maxConnectionsPerWorkload: count(10_000_000).default(DEFAULT_WORKLOAD_CAPS.maxConnectionsPerWorkload),
  maxRequestsPerWorkload: count(10_000_000).default(DEFAULT_WORKLOAD_CAPS.maxRequestsPerWorkload),
  // Envoy's connection_limit `delay`: how long a connection over the cap waits before its reset.
  refusalDelay: duration.prefault('100ms').refine((ms) => ms >= 0 && ms <= 10_000, { message: 'expected a delay between 0s and 10s' }),
})

// What plaintext sources may hold at :15006 (docs/config.md "inboundPlaintext"): anyone who
// can reach a workload's port can open connections there, certificate or not.
const inboundPlaintext = z.strictObject({
  maxConnections: count(1_000_000).default(DEFAULT_PLAINTEXT_LIMITS.maxConnections),
  maxConnectionsPerSource: count(1_000_000).default(DEFAULT_PLAINTEXT_LIMITS.maxConnectionsPerSource),
}).superRefine((p, ctx) => {
  if (p.maxConnectionsPerSource > p.maxConnections) ctx.addIssue({ code: 'custom', path: ['maxConnectionsPerSource'], message: `inboundPlaintext.maxConnectionsPerSource (${p.maxConnectionsPerSource}) is more than inboundPlaintext.maxConnections (${p.maxConnections})` })
})

export const NodeConfigSchema = z.strictObject({
  node: z.strictObject({
    name: dnsName,
    // The HBONE address(es) peers dial: one IPv4, one IPv6, or one of each.
    addresses,
  }),
  trustDomain: dnsName.default('cluster.local'),
  ports: ports.prefault({}),
  admin: admin.prefault({}),
  policyDir: absolutePath.default('/etc/hostmesh/policy.d'),
  // Once a policy is loaded, an empty or missing policy dir is refused (a half-finished
  // deploy must not wipe the mesh) unless this says an empty policy is intended.
  allowEmptyPolicy: z.boolean().default(false),
  certDir: absolutePath.default('/etc/hostmesh/certs'),
  certificates: z.strictObject({
    // ca: mint leaves from certDir/ca-cert.pem + ca-key.pem (`hostmesh ca node`).
    // file: read certDir/workloads/<namespace>/<serviceAccount>/{cert,key,chain}.pem written
    // by an external issuer (SPIRE, step-ca, cert-manager).
    mode: z.enum(['ca', 'file']).default('ca'),
    // Istio's default workload certificate TTL; renewed at half-life. Compiled to ms.
    leafTtl: duration.prefault('24h').refine((ms) => ms >= 60_000 && ms <= 90 * 86_400_000, {
      message: 'expected a leaf lifetime between 1m and 2160h (90 days)',
    }),
  }).prefault({}),
  logLevel: z.enum(LOG_LEVELS).default('info'),
  // Istio's terminationDrainDuration defaults to 5 s; long-lived TCP needs the option to wait more.
  drainSeconds: z.number().min(0).max(3600).default(5),
  outboundTrafficPolicy: z.enum(['ALLOW_ANY', 'REGISTRY_ONLY']).default('ALLOW_ANY'),
  outbound: outbound.prefault({}),
  // Data-path threads (docs/workers.md): auto is one per CPU the process may use (Envoy's
  // --concurrency, ztunnel's worker threads). The main thread is the first of them.
  workers: z.union([z.literal('auto'), z.number().int().min(1).max(256)]).default('auto'),
  hbone: hbone.prefault({}),
  inboundPlaintext: inboundPlaintext.prefault({}),
  http: http.prefault({}),
  iptables: z.strictObject({
    // Keep the HOSTMESH_* nat chains in sync with the local workloads (needs CAP_NET_ADMIN).
    // false: rules are managed outside the daemon (`hostmesh iptables apply`), or not at all.
    sync: z.boolean().default(true),
    // How often the daemon checks that its jumps and chains are still in place (a flush or
    // another tool may remove them) and restores them. Compiled to ms.
    checkInterval: duration.prefault('30s').refine((ms) => ms >= 1000 && ms <= 3_600_000, {
      message: 'expected an interval between 1s and 1h',
    }),
  }).prefault({}),
})

export type NodeConfigInput = z.input<typeof NodeConfigSchema>
export type NodeConfig = DeepReadonly<z.output<typeof NodeConfigSchema>>
export type LogLevel = (typeof LOG_LEVELS)[number]

export function isLoopback(address: string): boolean {
  return address === '::1' || /^127\./.test(address) || /^::ffff:127\./i.test(address)
}
