// Throwaway PKIs for certificate tests: roots and node CAs made by the real `ca` operations,
// leaves minted by the real node issuer (with a chosen clock for expired / not-yet-valid
// ones), and a child-process TLS peer (tls-peer.ts) to handshake with.
import { spawn } from 'node:child_process'
import { cpSync, mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import type { Test } from 'tap'
import { initRootCa, makeNodeCa } from '../../certs/ca-ops.ts'
import { NodeIssuer } from '../../certs/issuer.ts'
import type { RawServerSpec, ServerSpec } from './tls-peer.ts'

export const TD = 'cluster.local'
export const id = (ns: string, sa: string): string => `spiffe://${TD}/ns/${ns}/sa/${sa}`

export interface Pki {
  readonly dir: string
  root(name: string, trustDomain?: string): Promise<string>
  /** A node CA dir (ca-cert.pem, ca-key.pem, bundle.pem) for `node`, issued by root dir `root`. */
  node(root: string, node: string): Promise<string>
  /** A leaf for `identity` from a node CA dir, as files: cert.pem, key.pem, chain.pem. */
  leaf(nodeDir: string, identity: string, opts?: { now?: Date; ttlMs?: number; node?: string; trustDomain?: string }): Promise<LeafFiles>
}

export interface LeafFiles {
  readonly dir: string
  readonly cert: string
  readonly key: string
  readonly chain: string
}

export function pki(t: Test): Pki {
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-pki-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  let n = 0
  return {
    dir,
    async root(name, trustDomain = TD) {
      const d = join(dir, name)
      await initRootCa({ dir: d, trustDomain })
      return d
    },
    async node(root, node) {
      const d = join(dir, `${node}-${++n}`)
      await makeNodeCa({ caDir: root, node, outDir: d })
      return d
    },
    async leaf(nodeDir, identity, opts = {}) {
      const node = opts.node ?? /([a-z0-9-]+)-\d+$/.exec(nodeDir)![1]!
      const issuer = await NodeIssuer.load(nodeDir, opts.trustDomain ?? TD, node)
      const m = await issuer.mint(identity, opts.ttlMs ?? 3_600_000, opts.now)
      const d = join(dir, `leaf-${++n}`)
      mkdirSync(d)
      const files = { dir: d, cert: join(d, 'cert.pem'), key: join(d, 'key.pem'), chain: join(d, 'chain.pem') }
      writeFileSync(files.cert, m.certPem)
      writeFileSync(files.key, m.keyPem, { mode: 0o600 })
      writeFileSync(files.chain, m.chainPem)
      return files
    },
  }
}

/** A cert dir for a hostmesh node: its node CA files plus the given bundle text. */
export function certDirFor(p: Pki, nodeDir: string, bundle?: string): string {
  const d = join(p.dir, `certdir-${Math.random().toString(16).slice(2)}`)
  cpSync(nodeDir, d, { recursive: true })
  if (bundle !== undefined) writeFileSync(join(d, 'bundle.pem'), bundle)
  return d
}

export interface Peer {
  readonly port: number
  readonly events: Array<Record<string, unknown>>
  /** Resolves with the first event (already seen or future) matching `pred`; bounded. */
  waitFor(pred: (e: Record<string, unknown>) => boolean, timeoutMs?: number): Promise<Record<string, unknown>>
}

const NODE = process.execPath

export async function startPeer(t: Test, spec: ServerSpec | RawServerSpec): Promise<Peer> {
  const file = join(mkdtempSync(join(tmpdir(), 'hostmesh-peer-')), 'spec.json')
  writeFileSync(file, JSON.stringify(spec))
  const child = spawn(NODE, [new URL('./tls-peer.ts', import.meta.url).pathname, file], { stdio: ['ignore', 'pipe', 'pipe'] })
  let stderr = ''
  child.stderr.on('data', (d: Buffer) => { stderr += d.toString() })
  t.teardown(() => { child.kill('SIGKILL') })
  const events: Array<Record<string, unknown>> = []
  const waiters = new Set<() => void>()
  createInterface({ input: child.stdout }).on('line', (line) => {
    events.push(JSON.parse(line) as Record<string, unknown>)
    for (const w of waiters) w()
  })
  const waitFor = (pred: (e: Record<string, unknown>) => boolean, timeoutMs = 10_000): Promise<Record<string, unknown>> =>
    new Promise((resolve, reject) => {
      const check = (): void => {
        const hit = events.find(pred)
        if (hit) { waiters.delete(check); clearTimeout(timer); resolve(hit) }
      }
      const timer = setTimeout(() => { waiters.delete(check); reject(new Error(`peer event not seen within ${timeoutMs} ms; events: ${JSON.stringify(events)}; stderr: ${stderr.slice(-2000)}`)) }, timeoutMs)
      child.once('exit', (code) => { if (!events.find(pred)) { clearTimeout(timer); reject(new Error(`peer exited (${code}): ${stderr.slice(-2000)}`)) } })
      waiters.add(check)
      check()
    })
  const listening = await waitFor((e) => e.event === 'listening')
  return { port: listening.port as number, events, waitFor }
}

/** A node's certDir under `parent` (root CA beside it), as `ca init` + `ca node` make it. */
export async function nodeCertDir(parent: string, node: string, trustDomain = TD): Promise<string> {
  const root = join(parent, 'pki-root')
  await initRootCa({ dir: root, trustDomain, force: true })
  const certDir = join(parent, 'certs')
  await makeNodeCa({ caDir: root, node, outDir: certDir, force: true })
  return certDir
}

/** Verified sockets leave error handling to their owner: in tests, a peer killed at teardown is fine. */
export async function quiet<T extends { socket: { on(e: 'error', f: () => void): unknown } }>(p: Promise<T>): Promise<T> {
  const v = await p
  v.socket.on('error', () => undefined)
  return v
}
