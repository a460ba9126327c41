// What a worker thread must not load: each is megabytes of every thread's heap for code only the
// main thread runs (docs/workers.md): the policy compiler with its schema (zod) and YAML parser,
// and the certificate manager with its file watcher (chokidar). A fresh process records every
// module the worker entry resolves (module.registerHooks); the entry's own body then refuses to
// run outside a worker thread, which the probe expects.
import { execFile } from 'node:child_process'
import { promisify } from 'node:util'
import t from 'tap'

const entry = new URL('../../../daemon/workers/entry.ts', import.meta.url).href
const probe = `
const { registerHooks } = await import('node:module')
const seen = []
registerHooks({ resolve(specifier, context, next) { const r = next(specifier, context); seen.push(r.url); return r } })
const refused = await import(${JSON.stringify(entry)}).then(() => null, (err) => err.message)
console.log(JSON.stringify({ seen, refused }))
`

t.test('a worker thread loads the data path, not the compiler or the certificate manager', async (t) => {
  const env = { ...process.env }
  delete env.NODE_OPTIONS
  const { stdout } = await promisify(execFile)(process.execPath, ['--input-type=module', '-e', probe], { env, timeout: 60_000 })
  const { seen, refused } = JSON.parse(stdout) as { seen: string[]; refused: string | null }
  t.match(refused, /runs as a worker thread/, 'the entry refused to run outside a worker thread, after its imports')
  t.ok(seen.some((u) => u.endsWith('/daemon/run/data-plane.ts')), 'the data plane is loaded (the probe sees the imports)')
  for (const name of ['/policy/compile.ts', '/certs/manager.ts', '/node_modules/zod/', '/node_modules/yaml/', '/node_modules/chokidar/']) {
    t.same(seen.filter((u) => u.includes(name)), [], `not loaded: ${name}`)
  }
})
