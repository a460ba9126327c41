// What a soak scenario is (scripts/soak/scenarios.ts lists them): a disturbance run while the
// loads go on, its bar, and the checks that decide its verdict besides the loads' own.
import { renameSync, writeFileSync } from 'node:fs'
import type { HttpLoad, SoakMesh, TcpLoad } from './mesh.ts'

export interface Check {
  readonly name: string
  readonly ok: boolean
  readonly detail: string
  /** A bar not met yet, and why (RELIABILITY.md): the row still fails on it; the CI test marks it TODO. */
  readonly todo?: string
}
export interface Disturbance { readonly did: string; readonly checks: readonly Check[] }

export interface Scenario {
  readonly name: string
  /** The bar, as issue #15 words it. */
  readonly bar: string
  /** The share of HTTP requests that must succeed during the disturbance (default 1: none may fail). */
  readonly httpSuccess?: number
  /** The share of TCP connections that must succeed during the disturbance (default 1). */
  readonly tcpSuccess?: number
  /** The shortest disturbance that shows what the bar asks (--quick runs at least this long). */
  readonly minSeconds?: number
  /** Checks this scenario does not meet yet, by name, with why: still run, still reported, marked TODO in CI. */
  readonly unmet?: Readonly<Record<string, string>>
  /** Checks of the loads' figures besides the success shares. */
  loadChecks?(http: HttpLoad, tcp: TcpLoad): readonly Check[]
  /** Before the loads: the policy the scenario needs, in force on every host. */
  prepare?(mesh: SoakMesh): Promise<void>
  run(mesh: SoakMesh, seconds: number): Promise<Disturbance>
  /** After the row is measured: the mesh as the next scenario expects it. */
  cleanup?(mesh: SoakMesh): Promise<void>
}

/** Writes a file as editors and config managers do: a temporary file renamed over it. */
export function replaceFile(path: string, text: string, mode = 0o644): void {
  const tmp = `${path}.soak-tmp`
  writeFileSync(tmp, text, { mode })
  renameSync(tmp, path)
}
