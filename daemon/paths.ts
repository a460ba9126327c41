// Finds the package directory at run time, from source (daemon/) or from dist/daemon/ alike.
// Startup-only: it does sync I/O once and caches the answer.
import { existsSync, readFileSync } from 'node:fs'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'

let root: string | undefined

export function packageRoot(): string {
  if (root) return root
  let dir = dirname(fileURLToPath(import.meta.url))
  for (let i = 0; i < 8; i++) {
    const candidate = join(dir, 'package.json')
    if (existsSync(candidate) && (JSON.parse(readFileSync(candidate, 'utf8')) as { name?: string }).name === 'hostmesh') {
      root = dir
      return dir
    }
    dir = dirname(dir)
  }
  throw new Error(`hostmesh package.json not found above ${fileURLToPath(import.meta.url)}`)
}

export function packageVersion(): string {
  return (JSON.parse(readFileSync(join(packageRoot(), 'package.json'), 'utf8')) as { version: string }).version
}
