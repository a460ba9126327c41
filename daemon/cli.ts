#!/usr/bin/env node
// The `hostmesh` executable. Everything but the runtime check lives in cli/dispatch.ts.
import { dispatch } from './cli/dispatch.ts'

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

process.exitCode = await dispatch(process.argv.slice(2), {
  out: (s) => process.stdout.write(s),
  err: (s) => process.stderr.write(s),
  env: process.env,
})
