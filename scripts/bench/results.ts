// Where a benchmark's raw results go, and the machine line every report ends with: one
// naming scheme for scripts/bench/results/<name>-<UTC time to the second>Z.json.
import { mkdir, writeFile } from 'node:fs/promises'
import { cpus, totalmem } from 'node:os'

/** Writes `raw` as <dir, default scripts/bench/results>/<name>-<at, to the second>Z.json; returns the path. */
export async function writeResults(name: string, raw: unknown, at = new Date().toISOString(), folder = new URL('./results/', import.meta.url)): Promise<string> {
  const dir = folder.pathname
  await mkdir(dir, { recursive: true })
  const file = `${dir}${name}-${at.slice(0, 19).replace(/:/g, '-')}Z.json`
  await writeFile(file, `${JSON.stringify(raw, null, 2)}\n`)
  return file
}

/** "2 x <cpu model>, 24 GiB, node v24…". */
export function machineLine(): string {
  return `${cpus().length} x ${cpus()[0]?.model ?? 'cpu'}, ${Math.round(totalmem() / 2 ** 30)} GiB, node ${process.version}`
}
