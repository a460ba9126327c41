// A gRPC client workload for the end-to-end tests: one Greeter call (greeter.ts), then one
// JSON line: {code, details, messages, metadata (response headers), trailers, ms}. The channel
// connects first: ms and the deadline run from the call's start, not from the connect.
//   node grpc-client.ts HOST:PORT METHOD [REQUEST_JSON] [METADATA_JSON] [DEADLINE_MS]
import grpc from '@grpc/grpc-js'
import { GREETER } from './greeter.ts'

const [target, method] = [process.argv[2]!, process.argv[3]!]
const request: unknown = JSON.parse(process.argv[4] ?? '{}')
const sent: Record<string, string> = JSON.parse(process.argv[5] ?? '{}')
const deadlineMs = Number(process.argv[6] ?? 10_000)

const Greeter = grpc.makeGenericClientConstructor(GREETER, 'Greeter')
const client = new Greeter(target, grpc.credentials.createInsecure())
const metadata = new grpc.Metadata()
for (const [k, v] of Object.entries(sent)) metadata.set(k, v)
// Not connected in time: the call itself then reports why.
await new Promise<void>((resolve) => client.waitForReady(Date.now() + deadlineMs, () => resolve()))
const started = Date.now()
const messages: unknown[] = []
let headers: Record<string, unknown> | undefined

function mapOf(md: grpc.Metadata): Record<string, unknown> {
  const out: Record<string, unknown> = {}
  for (const [k, v] of Object.entries(md.getMap())) out[k] = Buffer.isBuffer(v) ? v.toString('base64') : v
  return out
}

const def = GREETER[method as keyof typeof GREETER]
if (!def) throw new Error(`no method ${method}`)
const options = { deadline: Date.now() + deadlineMs }
const call = def.responseStream
  ? client.makeServerStreamRequest(def.path, def.requestSerialize, def.responseDeserialize, request, metadata, options)
  : client.makeUnaryRequest(def.path, def.requestSerialize, def.responseDeserialize, request, metadata, options, (_err, value) => {
    if (value !== undefined) messages.push(value)
  })
if (def.responseStream) (call as grpc.ClientReadableStream<unknown>).on('data', (m: unknown) => messages.push(m))
call.on('error', () => undefined)
call.on('metadata', (md: grpc.Metadata) => { headers = mapOf(md) })
call.on('status', (s: grpc.StatusObject) => {
  // The unary callback runs after 'status': print on the next turn, with its message in.
  setImmediate(() => {
    process.stdout.write(`${JSON.stringify({ code: s.code, details: s.details, messages, metadata: headers ?? null, trailers: mapOf(s.metadata), ms: Date.now() - started })}\n`)
    client.close()
  })
})
