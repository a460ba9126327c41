// For test/e2e/install.test.ts: a listing of an installed tree (type, mode, owner, hash or
// link target of every entry) to compare runs with, and the settings of a systemd unit file.
import { createHash } from 'node:crypto'
import { lstatSync, readdirSync, readFileSync, readlinkSync } from 'node:fs'
import { join } from 'node:path'

/** Relative path → "d 0755 0:0", "f 0644 0:0 <sha256>" or "l 0777 0:0 -> target", sorted. */
export function listing(dir: string): Record<string, string> {
  const out: Record<string, string> = {}
  const walk = (rel: string): void => {
    const path = join(dir, rel)
    const st = lstatSync(path)
    const head = `${(st.mode & 0o7777).toString(8).padStart(4, '0')} ${st.uid}:${st.gid}`
    if (st.isDirectory()) {
      out[rel || '.'] = `d ${head}`
      for (const name of readdirSync(path).sort()) walk(rel ? `${rel}/${name}` : name)
    } else if (st.isFile()) {
      out[rel] = `f ${head} ${createHash('sha256').update(readFileSync(path)).digest('hex')}`
    } else if (st.isSymbolicLink()) {
      out[rel] = `l ${head} -> ${readlinkSync(path)}`
    } else {
      out[rel] = `? ${head}`
    }
  }
  walk('')
  return out
}

/** A unit file's settings: "Section.Key" → every value given, in order (comments skipped). */
export function unitSettings(text: string): Map<string, string[]> {
  const settings = new Map<string, string[]>()
  let section = ''
  for (const raw of text.split('\n')) {
    const line = raw.trim()
    if (line === '' || line.startsWith('#') || line.startsWith(';')) continue
    const header = /^\[(.+)\]$/.exec(line)
    if (header) { section = header[1]!; continue }
    const eq = line.indexOf('=')
    if (eq < 0) continue
    const key = `${section}.${line.slice(0, eq).trim()}`
    settings.set(key, [...(settings.get(key) ?? []), line.slice(eq + 1).trim()])
  }
  return settings
}

/** The one value of `key`; throws when it is absent or given more than once. */
export function unitValue(settings: Map<string, string[]>, key: string): string {
  const values = settings.get(key) ?? []
  if (values.length !== 1) throw new Error(`${key}: expected one value, found ${JSON.stringify(values)}`)
  return values[0]!
}
