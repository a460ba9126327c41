// node:http for the daemon, loaded with require() instead of an ESM import. An ESM import of a
// builtin makes Node copy every export into the module namespace, and reading node:http's
// lazy WebSocket, CloseEvent and MessageEvent exports loads Node's bundled undici (fetch,
// WebSocket, web streams): about 1 MB of heap and 0.6 MB outside it, in every daemon, for code
// that never runs (BENCHMARKS.md, "memory"). Type-only imports from 'node:http' are erased and
// stay as they are. test/unit/run/startup-footprint.test.ts keeps the daemon from loading it.
import { createRequire } from 'node:module'
import type * as Http from 'node:http'

const http = createRequire(import.meta.url)('node:http') as typeof Http

export default http
export const { STATUS_CODES, createServer } = http
