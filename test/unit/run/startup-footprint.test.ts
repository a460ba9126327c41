// Code that `hostmesh run` must not load, each worth megabytes of every daemon's heap for code
// it never runs (BENCHMARKS.md, "memory"): Node's bundled undici, which an ESM import of
// node:http pulls in (daemon/net/node-http.ts requires it instead), and undici's index, which
// loads fetch, WebSocket, caches and mocks next to the Pool (daemon/l7/pool.ts takes the Pool
// alone). A fresh process loads the CLI as `hostmesh run` does, without tap's NODE_OPTIONS hooks.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'

const entry = new URL('../../../daemon/cli/dispatch.ts', import.meta.url).href

// After recording what the daemon loaded, the same process imports node:http the ESM way: the
// bundled undici must then appear, or this check no longer sees it on this Node.
const probe = `
const { createRequire } = await import('node:module')
await import(${JSON.stringify(entry)})
const builtins = [...process.moduleLoadList]
const cjs = Object.keys(createRequire(${JSON.stringify(entry)}).cache)
await import('node:http')
console.log(JSON.stringify({ builtins, cjs, control: process.moduleLoadList }))
`

interface Loaded {
  readonly builtins: string[]
  readonly cjs: string[]
  readonly control: string[]
}

const BUNDLED_UNDICI = 'NativeModule internal/deps/undici/undici'

t.test('the daemon loads neither Node\'s bundled undici nor undici\'s index', async (t) => {
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', probe], { env, timeout: 60_000 })
  const loaded = JSON.parse(stdout) as Loaded
  t.ok(loaded.cjs.some((f) => f.endsWith('/node_modules/undici/lib/dispatcher/pool.js')), 'undici\'s Pool is loaded')
  t.ok(loaded.builtins.includes('NativeModule http2'), 'the list of loaded builtins is there')
  t.ok(loaded.control.includes(BUNDLED_UNDICI), 'an ESM import of node:http does load the bundled undici (the check sees it)')
  t.notOk(loaded.builtins.includes(BUNDLED_UNDICI), 'no ESM import of node:http: Node\'s bundled undici stays out')
  t.same(loaded.cjs.filter((f) => f.endsWith('/node_modules/undici/index.js')), [], 'undici\'s index stays out')
})
