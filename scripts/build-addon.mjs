// npm's install hook: builds the Node-API addons (SO_ORIGINAL_DST, sd_notify, malloc_trim) with node-gyp.
// A failed build must not fail `npm ci` for everything else (the CLI, `validate`, unit tests
// work without it), so this prints what went wrong and how to fix it, and the addon's loader
// raises HOSTMESH_ERR_ORIGDST_UNAVAILABLE with the same advice when the daemon needs it.
// Plain .mjs on purpose: it runs before TypeScript is built, on whatever node npm found.
import { spawnSync } from 'node:child_process'
import { existsSync } from 'node:fs'
import { dirname, join } from 'node:path'

// There is no network for node-gyp's header download, so point it at headers on disk.
// The addon uses only Node-API (NAPI_VERSION 8 in binding.gyp), which is ABI-stable:
// headers of any Node >= 18 build a module that loads in Node 24. Prefer the running
// Node's own headers, then npm's configured nodedir, then the distro's Node.
const prefix = join(dirname(process.execPath), '..')
const nodedir = [
  prefix,
  join(prefix, 'node_modules', `node-${process.platform}-${process.arch}`),
  process.env.npm_config_nodedir,
  '/usr',
  '/usr/local',
].find((dir) => dir && existsSync(join(dir, 'include', 'node', 'node_api.h')))
const args = ['rebuild']
if (nodedir) args.push(`--nodedir=${nodedir}`)

const nodeGyp = process.env.npm_config_node_gyp
const [cmd, cmdArgs] = nodeGyp ? [process.execPath, [nodeGyp, ...args]] : ['node-gyp', args]
const res = spawnSync(cmd, cmdArgs, { stdio: 'inherit' })
if (res.status !== 0) {
  const why = res.error ? res.error.message : `node-gyp exited with ${res.status ?? res.signal}`
  process.stderr.write(
    `\nhostmesh: building the Node-API addons failed (${why}); see node-gyp's output above for which.\n` +
    `hostmesh: origdst (SO_ORIGINAL_DST) is required by the daemon, sdnotify under systemd; malloctrim is\n` +
    `hostmesh: optional (glibc's malloc_trim). To fix: install a C toolchain (Debian: apt-get install -y g++ make python3),\n` +
    `hostmesh: then run \`npm rebuild hostmesh\` or \`npm run build:addon\` in the package directory.\n\n`,
  )
}
