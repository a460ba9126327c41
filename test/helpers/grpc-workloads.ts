// Where the gRPC workloads (scripts/netns/workloads/greeter.ts, grpc-server.ts,
// grpc-client.ts) run from in an end-to-end test: in place when other uids can read them and
// @grpc/grpc-js (a checkout under /root cannot be), else a world-readable copy of them with the
// two packages they load (grpc-js requires @grpc/proto-loader only for channelz and ORCA, which
// they do not use). The copy is removed with `t`.
import { chmodSync, cpSync, mkdtempSync, readdirSync, rmSync, statSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { othersCanRead } from '../../scripts/netns/readable.ts'

const ROOT = new URL('../../', import.meta.url).pathname
export const WORKLOADS = join(ROOT, 'scripts/netns/workloads')

export function grpcWorkloads(t: { teardown(fn: () => unknown): void }): string {
  const pkgs = ['@grpc/grpc-js', '@js-sdsl/ordered-map']
  const modules = join(ROOT, 'node_modules')
  const files = ['greeter.ts', 'grpc-server.ts', 'grpc-client.ts']
  if (files.every((f) => othersCanRead(join(WORKLOADS, f))) && pkgs.every((p) => othersCanRead(join(modules, p, 'package.json')))) return WORKLOADS
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-grpc-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  for (const f of files) cpSync(join(WORKLOADS, f), join(dir, f))
  for (const p of pkgs) cpSync(join(modules, p), join(dir, 'node_modules', p), { recursive: true })
  writeFileSync(join(dir, 'package.json'), '{"type": "module"}\n')
  chmodTree(dir)
  return dir
}

function chmodTree(path: string): void {
  if (!statSync(path).isDirectory()) return chmodSync(path, 0o644)
  chmodSync(path, 0o755)
  for (const e of readdirSync(path)) chmodTree(join(path, e))
}
