// A runaway workload: for SECONDS it keeps IN_FLIGHT connection attempts going to HOST:PORT as
// fast as they are answered. A connection that gets the server's first line is held; one that
// closes before that is refused, and another attempt takes its place at once. At most MAX
// attempts. Then it prints one JSON line and closes everything:
//   {"attempts":52011,"held":100,"refused":51911,"errors":{"ECONNRESET":51911},"seconds":8}
// Usage: runaway-client.ts HOST PORT SECONDS [IN_FLIGHT=200] [MAX=500000]. It runs as a
// workload's uid, so it imports nothing but node: modules.
import { connect, type Socket } from 'node:net'

const [host, port, seconds, inFlight, max] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4]), Number(process.argv[5] ?? 200), Number(process.argv[6] ?? 500_000)]
const deadline = performance.now() + seconds * 1000
const held: Socket[] = []
const errors: Record<string, number> = {}
let attempts = 0
let refused = 0
let pending = 0
let finished = false

function attempt(): void {
  if (finished || attempts >= max || performance.now() > deadline) return void (pending === 0 && finish())
  attempts++
  pending++
  const s = connect({ host, port })
  let first = false
  let error: string | undefined
  s.on('data', () => {
    if (first) return
    first = true
    pending--
    held.push(s)
    attempt()
  })
  s.on('error', (e: NodeJS.ErrnoException) => { error = e.code ?? e.message })
  s.on('close', () => {
    if (first) return
    pending--
    refused++
    errors[error ?? 'closed'] = (errors[error ?? 'closed'] ?? 0) + 1
    attempt()
  })
}

function finish(): void {
  if (finished) return
  finished = true
  process.stdout.write(`${JSON.stringify({ attempts, held: held.length, refused, errors, seconds })}\n`)
  for (const s of held) s.destroy()
  process.exit(0)
}

for (let i = 0; i < inFlight; i++) attempt()
setTimeout(finish, seconds * 1000 + 10_000).unref()
