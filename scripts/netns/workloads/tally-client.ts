// A client workload for the end-to-end tests and the demo: opens `n` connections (at most
// `concurrency` at once) and tallies the first word each server says. Prints one JSON object:
// { counts: {word: n}, failed }.
import { connect } from 'node:net'

const [host, port, n, concurrency] = [process.argv[2]!, Number(process.argv[3]), Number(process.argv[4] ?? 100), Number(process.argv[5] ?? 10)]
const counts: Record<string, number> = {}
let failed = 0
let started = 0

function one(): Promise<void> {
  return new Promise((resolve) => {
    const s = connect({ host, port })
    let buf = ''
    // Counted once: an error (or the timeout) is followed by 'close', which must not count again.
    let settled = false
    const settle = (word: string | null): void => {
      if (settled) return
      settled = true
      clearTimeout(timer)
      if (word === null) failed++
      else counts[word] = (counts[word] ?? 0) + 1
      s.destroy()
      resolve()
    }
    const timer = setTimeout(() => settle(null), 5000)
    s.on('data', (c: Buffer) => {
      buf += c.toString()
      const i = buf.indexOf('\n')
      if (i >= 0) settle(buf.slice(0, i).split(' ')[0]!)
    })
    s.on('error', () => settle(null))
    s.on('close', () => settle(null))
  })
}

async function worker(): Promise<void> {
  while (started < n) {
    started++
    await one()
  }
}
await Promise.all(Array.from({ length: concurrency }, worker))
process.stdout.write(`${JSON.stringify({ counts, failed })}\n`)
