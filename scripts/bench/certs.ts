// Certificate benchmarks, no root needed.
//   cert-mint: NodeIssuer.mint (P-256 key + leaf signed by the node CA) and the publish step
//     (verification against the bundle + node:tls SecureContext), against the crypto floor
//     measured in the same run: one WebCrypto P-256 key generation plus one ECDSA signature.
//   daemon-start: `hostmesh run` from spawn to /ready 200, with the example policy (node-c:
//     two local identities) and with 200 local workloads, against spawning `node -e 0`.
import { spawn } from 'node:child_process'
import { webcrypto } from 'node:crypto'
import { mkdtempSync, readFileSync, rmSync, writeFileSync, cpSync } from 'node:fs'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createSecureContext } from 'node:tls'
import { initRootCa, makeNodeCa } from '../../certs/ca-ops.ts'
import { parseBundle } from '../../certs/bundle.ts'
import { NodeIssuer } from '../../certs/issuer.ts'
import { parseCertificates } from '../../certs/pem.ts'
import { verifyPeer } from '../../certs/verify.ts'
import { median, percentile } from './stats.ts'

const CLI = new URL('../../daemon/cli.ts', import.meta.url).pathname
const EXAMPLES = new URL('../../policy/examples/', import.meta.url).pathname

async function pki(dir: string, node: string): Promise<string> {
  await initRootCa({ dir: join(dir, 'root'), trustDomain: 'cluster.local' })
  await makeNodeCa({ caDir: join(dir, 'root'), node, outDir: join(dir, 'certs') })
  return join(dir, 'certs')
}

function row(name: string, xs: number[]): string {
  return `| ${name} | ${xs.length} | ${percentile(xs, 0.5).toFixed(2)} | ${percentile(xs, 0.99).toFixed(2)} | ${Math.max(...xs).toFixed(2)} |`
}

export async function benchCertMint(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-bench-certs-'))
  try {
    const certDir = await pki(dir, 'node-a')
    const issuer = await NodeIssuer.load(certDir, 'cluster.local', 'node-a')
    const bundle = parseBundle(readFileSync(join(certDir, 'bundle.pem'), 'utf8'), 'bundle.pem')
    const n = 500
    const floor: number[] = []
    const mint: number[] = []
    const publish: number[] = []
    const data = new Uint8Array(300)
    for (let i = 0; i < n + 20; i++) {
      // Interleaved, so drift hits both alike; the first 20 are warm-up.
      let t0 = performance.now()
      const keys = (await webcrypto.subtle.generateKey({ name: 'ECDSA', namedCurve: 'P-256' }, true, ['sign', 'verify'])) as webcrypto.CryptoKeyPair
      await webcrypto.subtle.sign({ name: 'ECDSA', hash: 'SHA-256' }, keys.privateKey, data)
      const tFloor = performance.now() - t0
      const id = `spiffe://cluster.local/ns/bench/sa/w${i}`
      t0 = performance.now()
      const m = await issuer.mint(id, 86_400_000)
      const tMint = performance.now() - t0
      t0 = performance.now()
      const chain = [...parseCertificates(m.certPem, 'cert'), ...parseCertificates(m.chainPem, 'chain')]
      const v = verifyPeer(chain, { trustDomain: 'cluster.local', roots: bundle.roots, nodesOf: () => new Set(['node-a']) }, { expected: id })
      if (!v.ok) throw new Error(v.message)
      createSecureContext({ key: m.keyPem, cert: m.certPem + m.chainPem, ca: bundle.pem, minVersion: 'TLSv1.3' })
      const tPublish = performance.now() - t0
      if (i >= 20) {
        floor.push(tFloor)
        mint.push(tMint)
        publish.push(tPublish)
      }
    }
    console.log('| step | leaves | p50 ms | p99 ms | max ms |')
    console.log('|---|---|---|---|---|')
    console.log(row('crypto floor: P-256 keygen + 1 ECDSA sign (WebCrypto)', floor))
    console.log(row('mint: key + leaf signed by the node CA (NodeIssuer.mint)', mint))
    console.log(row('publish: verify chain/SAN/node + SecureContext', publish))
    console.log(`mint/floor p50 ratio: ${(percentile(mint, 0.5) / percentile(floor, 0.5)).toFixed(2)}`)
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

function freePort(): Promise<number> {
  return new Promise((resolve) => {
    const s = createServer().listen(0, '127.0.0.1', () => {
      const { port } = s.address() as { port: number }
      s.close(() => resolve(port))
    })
  })
}

async function timeToReady(config: string, port: number): Promise<number> {
  const t0 = performance.now()
  const child = spawn(process.execPath, [CLI, 'run', '--config', config], { stdio: 'ignore' })
  try {
    for (let i = 0; i < 600; i++) {
      const ok = await fetch(`http://127.0.0.1:${port}/ready`).then((r) => r.status === 200, () => false)
      if (ok) return performance.now() - t0
      await new Promise((r) => setTimeout(r, 5))
    }
    throw new Error('daemon not ready within the bound')
  } finally {
    child.kill('SIGTERM')
    await new Promise((r) => child.once('exit', r))
  }
}

function timeToExit(): Promise<number> {
  const t0 = performance.now()
  const child = spawn(process.execPath, ['-e', '0'], { stdio: 'ignore' })
  return new Promise((resolve) => child.once('exit', () => resolve(performance.now() - t0)))
}

export async function benchDaemonStart(): Promise<void> {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-bench-start-'))
  try {
    const certDir = await pki(dir, 'node-c')
    const layouts: Array<[string, string]> = []
    const small = join(dir, 'policy-small')
    cpSync(EXAMPLES, small, { recursive: true })
    layouts.push(['example policy, 2 local identities', small])
    const big = join(dir, 'policy-big')
    cpSync(EXAMPLES, big, { recursive: true })
    const extra = Array.from({ length: 200 }, (_, i) => `apiVersion: hostmesh.io/v1alpha1\nkind: Workload\nmetadata: {name: bench-${i}, namespace: bench}\nspec: {node: node-c, serviceAccount: sa-${i}, match: {uid: ${30000 + i}}}\n`).join('---\n')
    writeFileSync(join(big, '90-bench.yaml'), extra)
    layouts.push(['example + 200 local identities', big])
    console.log('| start | rounds | median ms | min ms | max ms |')
    console.log('|---|---|---|---|---|')
    const base: number[] = []
    const results = new Map<string, number[]>()
    for (let r = 0; r < 5; r++) {
      base.push(await timeToExit())
      for (const [name, policyDir] of layouts) {
        const port = await freePort()
        const config = join(dir, `${r}-${name.length}.yaml`)
        // iptables.sync off: a benchmark on loopback must not install capture rules in this
        // machine's own namespace (the capture benchmark measures iptables, in test hosts).
        writeFileSync(config, `node: {name: node-c, addresses: [10.77.0.13]}\nports: {admin: ${port}, outboundBase: 20001}\nadmin: {socket: ${config.replace(/\.yaml$/, '.sock')}}\npolicyDir: ${policyDir}\ncertDir: ${certDir}\nlogLevel: warn\niptables: {sync: false}\n`)
        const list = results.get(name) ?? []
        list.push(await timeToReady(config, port))
        results.set(name, list)
      }
    }
    const line = (name: string, xs: number[]): string => `| ${name} | ${xs.length} | ${median(xs).toFixed(0)} | ${Math.min(...xs).toFixed(0)} | ${Math.max(...xs).toFixed(0)} |`
    console.log(line('baseline: spawn `node -e 0` to exit', base))
    for (const [name, xs] of results) console.log(line(`hostmesh run → /ready 200, ${name}`, xs))
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}
