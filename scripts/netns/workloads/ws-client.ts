// A WebSocket client workload for the end-to-end tests: Node's global WebSocket (undici's
// RFC 6455 client, a real one) connects to URL, sends `count` text messages one at a time,
// each after the previous echo (the last one `bigBytes` long, to cross the 125-byte frame
// length), then closes. Prints one JSON line: { opened, echoes, closeCode, error? }.
//   node ws-client.ts URL [COUNT] [BIG_BYTES]
const [url, count, bigBytes] = [process.argv[2]!, Number(process.argv[3] ?? 3), Number(process.argv[4] ?? 1000)]
const echoes: string[] = []
let opened = false
let finished = false

const message = (i: number): string => (i === count ? `big ${'x'.repeat(Math.max(0, bigBytes - 4))}` : `hello ${i}`)

function done(closeCode: number | null, error?: string): void {
  if (finished) return
  finished = true
  process.stdout.write(`${JSON.stringify({ opened, echoes, closeCode, ...(error ? { error } : {}) })}\n`)
  process.exit(0)
}

const ws = new WebSocket(url)
ws.addEventListener('open', () => {
  opened = true
  ws.send(message(1))
})
ws.addEventListener('message', (e: MessageEvent) => {
  echoes.push(String(e.data))
  if (echoes.length < count) ws.send(message(echoes.length + 1))
  else ws.close(1000, 'done')
})
ws.addEventListener('close', (e: CloseEvent) => done(e.code))
ws.addEventListener('error', (e: Event) => done(null, (e as Event & { message?: string }).message ?? 'error'))
setTimeout(() => done(null, 'timeout'), 10_000).unref()
