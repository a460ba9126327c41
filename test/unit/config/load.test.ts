import { DEFAULT_PLAINTEXT_LIMITS } from '../../../daemon/limits/plaintext-limits.ts'
import { DEFAULT_ADMIN_MAX_CONNECTIONS } from '../../../daemon/admin/limits.ts'
import { mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { DEFAULT_WORKLOAD_CAPS } from '../../../daemon/limits/workload-caps.ts'
import { ConfigError } from '../../../daemon/config/errors.ts'
import { loadNodeConfig, parseNodeConfig, resolveConfigPath } from '../../../daemon/config/load.ts'
import { hboneLimits, l7Limits } from '../../../daemon/run/data-plane.ts'
import { DEFAULT_HBONE_LIMITS } from '../../../daemon/tunnel/admission.ts'
import { DEFAULT_L7_LIMITS } from '../../../daemon/l7/limits.ts'
import { hostmesh } from '../../helpers/cli.ts'

const dir = mkdtempSync(join(tmpdir(), 'hostmesh-config-'))
function file(name: string, text: string): string {
  const path = join(dir, name)
  writeFileSync(path, text)
  return path
}

const GOOD = `node:
  name: node-a
  addresses: [10.0.0.11, "fd00::11"]
trustDomain: example.org
ports: { admin: 16000 }
logLevel: debug
drainSeconds: 12.5
outboundTrafficPolicy: REGISTRY_ONLY
`

t.test('a valid file gives a deep-frozen config with defaults filled in', async (t) => {
  const cfg = await loadNodeConfig(file('good.yaml', GOOD))
  t.same(cfg, {
    node: { name: 'node-a', addresses: ['10.0.0.11', 'fd00::11'] },
    trustDomain: 'example.org',
    ports: { admin: 16000, outboundBase: 15001, inboundPlaintext: 15006, hbone: 15008 },
    admin: { address: '127.0.0.1', allowRemote: false, socket: '/run/hostmesh/admin.sock', maxConnections: 128 },
    policyDir: '/etc/hostmesh/policy.d',
    allowEmptyPolicy: false,
    certDir: '/etc/hostmesh/certs',
    certificates: { mode: 'ca', leafTtl: 86_400_000 },
    logLevel: 'debug',
    drainSeconds: 12.5,
    outboundTrafficPolicy: 'REGISTRY_ONLY',
    outbound: { maxConnectionsPerWorkload: 4096, maxRequestsPerWorkload: 4096, refusalDelay: 100 },
    workers: 'auto',
    iptables: { sync: true, checkInterval: 30_000 },
    hbone: {
      maxConnections: 4096, maxConnectionsPerSource: 512, maxHandshakes: 128, maxHandshakesPerSource: 32, handshakeTimeout: 10_000,
      newConnectionsPerSecond: 100, newConnectionsBurst: 1000, maxTunnels: 32_768, maxTunnelsPerPeer: 8192,
      refusedStreamsPerSecond: 10, refusedStreamsBurst: 100, idleSessionTimeout: 600_000, keepaliveInterval: 10_000, keepaliveTimeout: 10_000,
    },
    inboundPlaintext: { maxConnections: 4096, maxConnectionsPerSource: 1024 },
    http: { maxRequestHeadersKb: 60, maxRequestHeaders: 100, headerTimeout: 10_000, idleTimeout: 300_000, traceparent: true },
  })
  t.ok(Object.isFrozen(cfg))
  t.ok(Object.isFrozen(cfg.ports))
  t.ok(Object.isFrozen(cfg.node.addresses))
  t.throws(() => { (cfg.ports as { admin: number }).admin = 1 }, TypeError, 'writing to it throws in strict mode')
})

t.test('the shipped example config is valid', async (t) => {
  const cfg = await loadNodeConfig(new URL('../../../systemd/etc-hostmesh/hostmesh.yaml', import.meta.url).pathname)
  t.equal(cfg.ports.hbone, 15008)
  t.equal(cfg.admin.address, '127.0.0.1')
  t.same(cfg.certificates, { mode: 'ca', leafTtl: 86_400_000 })
  t.same(hboneLimits(cfg), DEFAULT_HBONE_LIMITS, 'its hbone section spells out the defaults')
  t.same(l7Limits(cfg), DEFAULT_L7_LIMITS, 'its http section spells out the defaults')
  t.equal(cfg.http.traceparent, true)
  t.same(cfg.inboundPlaintext, DEFAULT_PLAINTEXT_LIMITS, 'its inboundPlaintext section spells out the defaults')
  t.equal(cfg.admin.maxConnections, DEFAULT_ADMIN_MAX_CONNECTIONS, 'its admin section spells out maxConnections')
})

t.test('config path: --config, then HOSTMESH_CONFIG, then the default', async (t) => {
  t.equal(resolveConfigPath('/a.yaml', { HOSTMESH_CONFIG: '/b.yaml' }), '/a.yaml')
  t.equal(resolveConfigPath(undefined, { HOSTMESH_CONFIG: '/b.yaml' }), '/b.yaml')
  t.equal(resolveConfigPath(undefined, {}), '/etc/hostmesh/hostmesh.yaml')
})

// Each kind of bad input, through the real executable: `hostmesh run` must exit non-zero,
// before binding anything, with a line `<file>:<line>:<col>: <key>: ...` for the problem.
// `at` is what follows the file name on that line.
const BAD: Array<{ name: string; text: string; at: RegExp; also?: RegExp }> = [
  { name: 'bad YAML', text: 'node:\n  name: [unclosed\n', at: /:3:1: YAML syntax: / },
  { name: 'an unknown key', text: 'node: {name: a, addresses: [10.0.0.1]}\nprots: {admin: 1}\n', at: /:2:1: unknown key "prots"; did you mean "ports"\?/, also: /Allowed keys: node, trustDomain, ports, admin/ },
  { name: 'a nested unknown key', text: 'node: {name: a, addresses: [10.0.0.1]}\nadmin:\n  allowremote: true\n', at: /:3:3: unknown key "allowremote" under admin; did you mean "allowRemote"\?/ },
  { name: 'a wrong type', text: 'node: {name: a, addresses: [10.0.0.1]}\ndrainSeconds: soon\n', at: /:2:15: drainSeconds: expected a number, got "soon"/ },
  { name: 'a port out of range', text: 'node: {name: a, addresses: [10.0.0.1]}\nports:\n  hbone: 70000\n', at: /:3:10: ports\.hbone: 70000 is too large: expected at most 65535/ },
  { name: 'a required key missing', text: 'node:\n  name: a\n', at: /:2:3: node\.addresses: required key is missing \(expected a list\)/ },
  { name: 'a value not in the allowed set', text: 'node: {name: a, addresses: [10.0.0.1]}\noutboundTrafficPolicy: DENY\n', at: /:2:24: outboundTrafficPolicy: "DENY" is not allowed; expected one of "ALLOW_ANY", "REGISTRY_ONLY"/ },
  { name: 'a bad address', text: 'node: {name: a, addresses: [10.0.0.300]}\n', at: /:1:29: node\.addresses\[0\]: expected an IPv4 or IPv6 address; got "10\.0\.0\.300"/ },
  { name: 'two ports the same', text: 'node: {name: a, addresses: [10.0.0.1]}\nports: {admin: 15008}\n', at: /:2:16: ports\.admin: port 15008 is used by both ports\.admin and ports\.hbone/ },
  { name: 'a remote admin bind without allowRemote', text: 'node: {name: a, addresses: [10.0.0.1]}\nadmin: {address: 0.0.0.0}\n', at: /:2:18: admin\.address: the admin port has no authentication/ },
  { name: 'a relative admin socket', text: 'node: {name: a, addresses: [10.0.0.1]}\nadmin: {socket: run/admin.sock}\n', at: /:2:17: admin\.socket: expected an absolute path/ },
  { name: 'an admin socket path over 107 bytes', text: `node: {name: a, addresses: [10.0.0.1]}\nadmin: {socket: /${'s'.repeat(107)}}\n`, at: /:2:17: admin\.socket: a unix socket path is at most 107 bytes/ },
  { name: 'a repeated key', text: 'node: {name: a, addresses: [10.0.0.1]}\nlogLevel: info\nlogLevel: debug\n', at: /:3:1: YAML syntax: Map keys must be unique/ },
  { name: 'a leaf lifetime out of range', text: 'node: {name: a, addresses: [10.0.0.1]}\ncertificates: {leafTtl: 10s}\n', at: /:2:25: certificates\.leafTtl: expected a leaf lifetime between 1m and 2160h/ },
  { name: 'an iptables check interval out of range', text: 'node: {name: a, addresses: [10.0.0.1]}\niptables: {checkInterval: 100ms}\n', at: /:2:27: iptables\.checkInterval: expected an interval between 1s and 1h/ },
  { name: 'an unknown certificate mode', text: 'node: {name: a, addresses: [10.0.0.1]}\ncertificates:\n  mode: spire\n', at: /:3:9: certificates\.mode: "spire" is not allowed; expected one of "ca", "file"/ },
  { name: 'an empty file', text: '', at: /:1:1: the file holds no YAML document/ },
  { name: 'an alias bomb', text: `node: {name: a, addresses: [10.0.0.1]}\nx0: &a0 [1,1,1,1,1,1,1,1,1,1]\n${Array.from({ length: 8 }, (_, i) => `x${i + 1}: &a${i + 1} [${Array(10).fill(`*a${i}`).join(',')}]`).join('\n')}\n`, at: /:1:1: YAML aliases: .*the limit is 100 alias expansions/ },
]

for (const bad of BAD) {
  t.test(`bad input fails start: ${bad.name}`, async (t) => {
    const path = file(`${bad.name.replaceAll(' ', '-')}.yaml`, bad.text)
    const res = hostmesh(['run', '--config', path])
    t.equal(res.status, 78, 'exit code 78 (EX_CONFIG)')
    t.match(res.stderr, `invalid node config ${path}`, 'names the file')
    t.match(res.stderr, new RegExp(`^${escape(path)}${bad.at.source}`, 'm'), 'names line, column, key and what is allowed')
    if (bad.also) t.match(res.stderr, bad.also)
    t.equal(res.stdout, '', 'nothing started, nothing logged')
  })
}

t.test('every problem is reported, not just the first', async (t) => {
  const err = t.throws(() => parseNodeConfig('multi.yaml', 'node: {name: A_B, addresses: []}\nports: {admin: 0, hbone: x}\nlogLevel: loud\nextra: 1\n')) as ConfigError
  t.equal(err.code, 'HOSTMESH_ERR_CONFIG')
  t.same(err.problems.map((p) => p.key), ['node.name', 'node.addresses', 'ports.admin', 'ports.hbone', 'logLevel', 'extra'])
  t.ok(err.problems.every((p) => p.file === 'multi.yaml' && p.line > 0 && p.col > 0))
})

t.test('a missing file names the file and the reason', async (t) => {
  const res = hostmesh(['run', '--config', join(dir, 'nope.yaml')])
  t.equal(res.status, 78)
  t.match(res.stderr, `cannot read node config ${join(dir, 'nope.yaml')}: cannot open: ENOENT`)
})

t.test('HOSTMESH_CONFIG is used when --config is absent', async (t) => {
  const path = file('env.yaml', 'node: {name: a, addresses: [10.0.0.1]}\nbogus: 1\n')
  const res = hostmesh(['run'], { HOSTMESH_CONFIG: path })
  t.equal(res.status, 78)
  t.match(res.stderr, `${path}:2:1: unknown key "bogus"`)
})

t.test('a file over the size limit is refused without parsing', async (t) => {
  const path = file('huge.yaml', `# ${'x'.repeat(70 * 1024)}\n`)
  const err = await t.rejects(loadNodeConfig(path)) as unknown as ConfigError
  t.match(String(err), /larger than the limit of 65536 bytes/)
})

function escape(s: string): string {
  return s.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')
}

t.test('the http limits default to Envoy\'s, as the L7 pipelines take them', async (t) => {
  t.same(l7Limits(parseNodeConfig('a.yaml', 'node: {name: n, addresses: [10.0.0.1]}\n')), DEFAULT_L7_LIMITS)
  t.same(l7Limits(parseNodeConfig('b.yaml', 'node: {name: n, addresses: [10.0.0.1]}\nhttp: {maxRequestHeadersKb: 8, headerTimeout: 2s}\n')), { ...DEFAULT_L7_LIMITS, maxRequestHeadersBytes: 8192, headerTimeoutMs: 2000 })
  t.throws(() => parseNodeConfig('c.yaml', 'node: {name: n, addresses: [10.0.0.1]}\nhttp: {headerTimeout: 1ms}\n'), /c\.yaml:2:\d+: http\.headerTimeout: expected a timeout between 100ms and 10m/)
})

t.test('the hbone limits default to the HBONE server\'s own defaults; a per-source limit above its total is refused', async (t) => {
  const config = parseNodeConfig('a.yaml', 'node: {name: n, addresses: [10.0.0.1]}\n')
  t.same(hboneLimits(config), DEFAULT_HBONE_LIMITS, 'the schema defaults and the server defaults are the same numbers')
  t.same(hboneLimits(parseNodeConfig('b.yaml', 'node: {name: n, addresses: [10.0.0.1]}\nhbone: {handshakeTimeout: 2s, maxTunnelsPerPeer: 10}\n')), { ...DEFAULT_HBONE_LIMITS, handshakeTimeoutMs: 2000, maxTunnelsPerPeer: 10 })
  t.throws(() => parseNodeConfig('c.yaml', 'node: {name: n, addresses: [10.0.0.1]}\nhbone: {maxConnections: 10, maxConnectionsPerSource: 20}\n'), /c\.yaml:\d+:\d+: hbone\.maxConnectionsPerSource: hbone\.maxConnectionsPerSource \(20\) is more than hbone\.maxConnections \(10\)/)
})

t.test('outbound: per-workload caps default to the enforcement\'s defaults; a cap below 1 is refused with its place', async (t) => {
  t.same(parseNodeConfig('a.yaml', 'node: {name: n, addresses: [10.0.0.1]}\n').outbound, { ...DEFAULT_WORKLOAD_CAPS, refusalDelay: 100 })
  t.same(parseNodeConfig('b.yaml', 'node: {name: n, addresses: [10.0.0.1]}\noutbound: {maxRequestsPerWorkload: 64, refusalDelay: 0s}\n').outbound, { ...DEFAULT_WORKLOAD_CAPS, maxRequestsPerWorkload: 64, refusalDelay: 0 })
  t.throws(() => parseNodeConfig('c.yaml', 'node: {name: n, addresses: [10.0.0.1]}\noutbound:\n  maxConnectionsPerWorkload: 0\n'), /c\.yaml:3:30: outbound\.maxConnectionsPerWorkload: /)
  t.throws(() => parseNodeConfig('d.yaml', 'node: {name: n, addresses: [10.0.0.1]}\noutbound: {maxConections: 5}\n'), /d\.yaml:2:12: unknown key "maxConections" under outbound/)
})

t.test('workers: auto or a whole number of threads, 1 to 256', async (t) => {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-config-workers-'))
  const file = join(dir, 'hostmesh.yaml')
  writeFileSync(file, 'node: {name: a, addresses: [10.0.0.1]}\nworkers: 4\n')
  t.equal((await loadNodeConfig(file)).workers, 4)
  writeFileSync(file, 'node: {name: a, addresses: [10.0.0.1]}\nworkers: 0\n')
  await t.rejects(loadNodeConfig(file), { message: /:2:10: workers/ }, 'zero threads is refused, at its line and column')
  writeFileSync(file, 'node: {name: a, addresses: [10.0.0.1]}\nworkers: many\n')
  await t.rejects(loadNodeConfig(file), { message: /:2:10: workers/ })
})
