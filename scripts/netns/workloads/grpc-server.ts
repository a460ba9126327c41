// A gRPC workload for the end-to-end tests: the Greeter service (greeter.ts) over h2c.
//   node grpc-server.ts NAME PORT
//   SayHello {name}          → {server, hello, metadata}: who answered and every metadata entry it saw
//   Count {n}                → n messages {server, i}
//   Fail {code, details}     → that status, with trailing metadata x-detail: <details>
//   Forbidden {}             → {server}; the e2e policy denies it, so it must never run
//   Flaky {}                 → UNAVAILABLE to the first try of each call, {server, id, tries,
//                              attempt} to the next: a call is keyed by its `x-call-id` metadata
//                              (a retry carries the same metadata), attempt is the try's
//                              x-hostmesh-attempt-count
//   Slow {ms}                → {server, ms} after ms (default 5000); a call cancelled before
//                              then prints "CANCELLED Slow"
// Prints "REQ <method>" for every call that reaches a handler (Flaky: "REQ Flaky <id> <try>
// <attempt>"), so a test sees what got here.
import grpc from '@grpc/grpc-js'
import { GREETER } from './greeter.ts'

const [name, port] = [process.argv[2]!, Number(process.argv[3])]

type Unary = grpc.ServerUnaryCall<Record<string, unknown>, unknown>

function seen(md: grpc.Metadata): Record<string, string> {
  const out: Record<string, string> = {}
  for (const [k, v] of Object.entries(md.getMap())) out[k] = Buffer.isBuffer(v) ? v.toString('base64') : v
  return out
}

/** Flaky: tries seen per x-call-id (the oldest forgotten past MAX_CALLS). */
const flakyTries = new Map<string, number>()
const MAX_CALLS = 10_000

const first = (md: grpc.Metadata, key: string): string => String(md.get(key)[0] ?? '-')

const handlers: grpc.UntypedServiceImplementation = {
  SayHello(call: Unary, cb: grpc.sendUnaryData<unknown>) {
    process.stdout.write('REQ SayHello\n')
    cb(null, { server: name, hello: call.request.name, metadata: seen(call.metadata) })
  },
  Count(call: grpc.ServerWritableStream<Record<string, unknown>, unknown>) {
    process.stdout.write('REQ Count\n')
    const n = Number(call.request.n ?? 0)
    for (let i = 0; i < n; i++) call.write({ server: name, i })
    call.end()
  },
  Fail(call: Unary, cb: grpc.sendUnaryData<unknown>) {
    process.stdout.write('REQ Fail\n')
    const trailers = new grpc.Metadata()
    trailers.set('x-detail', String(call.request.details ?? ''))
    trailers.set('x-server', name)
    cb({ code: Number(call.request.code ?? grpc.status.UNKNOWN), details: String(call.request.details ?? ''), metadata: trailers })
  },
  Forbidden(_call: Unary, cb: grpc.sendUnaryData<unknown>) {
    process.stdout.write('REQ Forbidden\n')
    cb(null, { server: name })
  },
  Flaky(call: Unary, cb: grpc.sendUnaryData<unknown>) {
    const id = first(call.metadata, 'x-call-id')
    const attempt = first(call.metadata, 'x-hostmesh-attempt-count')
    const tries = (flakyTries.get(id) ?? 0) + 1
    flakyTries.delete(id)
    flakyTries.set(id, tries)
    if (flakyTries.size > MAX_CALLS) flakyTries.delete(flakyTries.keys().next().value!)
    process.stdout.write(`REQ Flaky ${id} ${tries} ${attempt}\n`)
    if (tries === 1) return cb({ code: grpc.status.UNAVAILABLE, details: `first try of ${id} fails` })
    cb(null, { server: name, id, tries, attempt })
  },
  Slow(call: Unary, cb: grpc.sendUnaryData<unknown>) {
    process.stdout.write('REQ Slow\n')
    const ms = Number(call.request.ms ?? 5000)
    const timer = setTimeout(() => cb(null, { server: name, ms }), ms)
    call.on('cancelled', () => {
      clearTimeout(timer)
      process.stdout.write('CANCELLED Slow\n')
    })
  },
}

const server = new grpc.Server()
server.addService(GREETER, handlers)
server.bindAsync(`0.0.0.0:${port}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) {
    process.stderr.write(`bind failed: ${err.message}\n`)
    process.exit(1)
  }
  process.stdout.write(`listening ${port}\n`)
})
process.on('SIGTERM', () => server.tryShutdown(() => process.exit(0)))
