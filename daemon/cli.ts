#!/usr/bin/env node
// The `hostmesh` executable. Everything but the runtime check and the compile cache lives in
// cli/dispatch.ts, which is imported only after both.
import module from 'node:module'
import { join } from 'node:path'

const MIN_NODE_MAJOR = 24
const major = Number(process.versions.node.split('.')[0])
if (major < MIN_NODE_MAJOR) {
  process.stderr.write(
    `hostmesh: needs Node.js ${MIN_NODE_MAJOR} or newer, but this is ${process.version} (${process.execPath}).\n` +
    `hostmesh: in the source tree use 'npm run hostmesh -- <command>', which runs the node@24 from node_modules;\n` +
    `hostmesh: an installed hostmesh (scripts/install.sh) ships its own runtime.\n`,
  )
  process.exit(1)
}

// `hostmesh run` under systemd (CacheDirectory=hostmesh sets CACHE_DIRECTORY): V8's code cache
// on disk. A restart's start is time its callers' connections wait in the listen backlog
// (RELIABILITY.md, "restart"), and the cache roughly halves loading the daemon's modules.
// Worker threads inherit it through NODE_COMPILE_CACHE. A failure to enable it is not an error.
const cacheRoot = process.env.CACHE_DIRECTORY?.split(':')[0]
if (process.argv[2] === 'run' && cacheRoot) {
  const enabled = module.enableCompileCache(join(cacheRoot, 'compile-cache'))
  if (enabled.directory) process.env.NODE_COMPILE_CACHE = enabled.directory
}

const { dispatch } = await import('./cli/dispatch.ts')
process.exitCode = await dispatch(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
})
