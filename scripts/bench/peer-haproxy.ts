// The HAProxy mTLS pair of the peer bench: what a user would deploy instead of hostmesh for
// node-to-node mTLS. One HAProxy on the client host originates TLS to one on the server host,
// which terminates it and connects to the local server; both in plain TCP mode. TLS 1.3 only,
// ECDSA P-256 leaves from the same root as hostmesh's certificates (each signed by its host's
// node CA, so the chain is the one hostmesh's own leaves have), `verify required` on both sides
// against that root. nbthread is left to HAProxy's default: one thread per CPU it may use.
import { writeFile } from 'node:fs/promises'
import { createConnection } from 'node:net'
import { join } from 'node:path'
import { NodeIssuer } from '../../certs/issuer.ts'
import type { HostProcess, TestHost } from '../netns/hosts.ts'

/** One forwarded port: client → 127.0.0.1:clientPort on the client host → TLS to tlsPort on the server host → 127.0.0.1:serverPort there. */
export interface PairPort { readonly name: string; readonly clientPort: number; readonly tlsPort: number; readonly serverPort: number }

export interface PairFiles { readonly clientCfg: string; readonly serverCfg: string; readonly clientSocket: string; readonly serverSocket: string; readonly ca: string; readonly clientCrt: string; readonly clientKey: string }

// maxconn: HAProxy would size it from the fd limit (20,000 here, too few for its default);
// the loads need at most a few hundred. The stats socket is for `show info` after the runs.
const GLOBAL = (socket: string): string => `global
  maxconn 8000
  stats socket ${socket} mode 600 level user
  ssl-default-bind-options ssl-min-ver TLSv1.3
  ssl-default-server-options ssl-min-ver TLSv1.3

defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s
`

/**
 * Mints one leaf per side from that host's node CA (dir/<host>/certs, as meshNodeConfigs
 * makes them) and writes both configs. `rootBundle` is the root's bundle.pem.
 */
export async function writePair(dir: string, trustDomain: string, client: TestHost, server: TestHost, rootBundle: string, ports: readonly PairPort[]): Promise<PairFiles> {
  const leaf = async (host: TestHost, sa: string): Promise<{ crt: string; key: string }> => {
    const issuer = await NodeIssuer.load(join(dir, host.name, 'certs'), trustDomain, host.name)
    const m = await issuer.mint(`spiffe://${trustDomain}/ns/bench/sa/${sa}`, 86_400_000)
    const crt = join(dir, `haproxy-${sa}.pem`)
    const key = join(dir, `haproxy-${sa}.key`)
    // HAProxy's crt: the leaf, the intermediates, then the key, in one file.
    await writeFile(crt, m.certPem + m.chainPem + m.keyPem, { mode: 0o600 })
    await writeFile(key, m.keyPem, { mode: 0o600 })
    return { crt, key }
  }
  const c = await leaf(client, 'haproxy-client')
  const s = await leaf(server, 'haproxy-server')
  const clientCfg = join(dir, 'haproxy-client.cfg')
  const serverCfg = join(dir, 'haproxy-server.cfg')
  const [clientSocket, serverSocket] = [join(dir, 'haproxy-client.sock'), join(dir, 'haproxy-server.sock')]
  await writeFile(clientCfg, GLOBAL(clientSocket) + ports.map((p) => `
listen ${p.name}
  bind 127.0.0.1:${p.clientPort}
  server ${server.name} ${server.ipv4}:${p.tlsPort} ssl crt ${c.crt} ca-file ${rootBundle} verify required
`).join(''))
  await writeFile(serverCfg, GLOBAL(serverSocket) + ports.map((p) => `
listen ${p.name}
  bind ${server.ipv4}:${p.tlsPort} ssl crt ${s.crt} ca-file ${rootBundle} verify required
  server local 127.0.0.1:${p.serverPort}
`).join(''))
  return { clientCfg, serverCfg, clientSocket, serverSocket, ca: rootBundle, clientCrt: c.crt, clientKey: c.key }
}

/** `haproxy -db` in the foreground; `ip netns exec` execs it in place, so the pid is HAProxy's. */
export function startHaproxy(host: TestHost, cfg: string): HostProcess {
  return host.spawn(['haproxy', '-db', '-f', cfg])
}

export interface PairTls { protocol: string; cipher: string; serverVerified: boolean; refusedWithoutClientCert: boolean; acceptedWithClientCert: boolean; sClient: string }

/**
 * What the server side really negotiates and enforces, asked from the client host: TLS 1.3
 * and its cipher, its certificate chaining to the root (openssl s_client with the client's
 * leaf), and that a client without a certificate is refused while one with it gets an answer
 * from `httpPort`'s server through the server-side HAProxy.
 */
export async function checkPairTls(client: TestHost, server: TestHost, files: PairFiles, httpPort: PairPort, path: string): Promise<PairTls> {
  const addr = `${server.ipv4}:${httpPort.tlsPort}`
  const s = await client.exec(['openssl', 's_client', '-brief', '-connect', addr, '-CAfile', files.ca, '-verify_return_error', '-cert', files.clientCrt, '-key', files.clientKey], { input: '', timeoutMs: 10_000 })
  const out = `${s.stdout}\n${s.stderr}`
  const url = `https://${addr}${path}`
  // -k: the leaf names a SPIFFE ID, not this address; the chain was checked by s_client above.
  const withCert = await client.exec(['curl', '-sS', '-k', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', '--cert', files.clientCrt, '--key', files.clientKey, url], { timeoutMs: 10_000 })
  const withoutCert = await client.exec(['curl', '-sS', '-k', '-m', '5', '-o', '/dev/null', '-w', '%{http_code}', url], { timeoutMs: 10_000 })
  return {
    protocol: /Protocol version: (\S+)/.exec(out)?.[1] ?? '?',
    cipher: /Ciphersuite: (\S+)/.exec(out)?.[1] ?? '?',
    // Not s_client's exit code: with stdin at EOF it may exit 1 when the server closes first.
    serverVerified: /Verification: OK/.test(out) && !/verify error/i.test(out),
    acceptedWithClientCert: withCert.stdout === '200',
    sClient: out.trim().slice(0, 2000),
    refusedWithoutClientCert: withoutCert.code !== 0 && withoutCert.stdout !== '200',
  }
}

/** HAProxy's `show info` counters (numbers only) from its stats socket. */
export function haproxyInfo(socket: string): Promise<Record<string, number>> {
  return new Promise((resolve, reject) => {
    let text = ''
    const c = createConnection({ path: socket }, () => c.end('show info\n'))
    c.setEncoding('utf8')
    c.on('data', (d: string) => { text += d })
    c.once('error', reject)
    c.once('close', () => {
      const info: Record<string, number> = {}
      for (const line of text.split('\n')) {
        const m = /^(\w+): (\d+(?:\.\d+)?)$/.exec(line.trim())
        if (m) info[m[1]!] = Number(m[2])
      }
      resolve(info)
    })
  })
}
