import { execFileSync } from 'node:child_process'
import { constants, mkdtempSync, openSync, rmSync } from 'node:fs'
import { Socket } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { setFlagsFromString } from 'node:v8'
import { runInNewContext } from 'node:vm'
import { pino } from 'pino'
import t from 'tap'
import { createLogger, LOG_BUFFER_MAX_BYTES, logDestination, type LogDestination } from '../../../daemon/log/logger.ts'
import { logSink } from '../../helpers/log-sink.ts'


t.test('JSON lines with level label, ISO time, node and component', async (t) => {
  const s = logSink()
  const log = createLogger('info', { node: 'n1' }, s.dest)
  log.component('tunnel').info({ peer: 'x' }, 'hello')
  log.component('tunnel').debug('hidden at info')
  const [line] = s.lines()
  t.match(line, { level: 'info', node: 'n1', component: 'tunnel', peer: 'x', msg: 'hello' })
  t.match(line?.time, /^\d{4}-\d\d-\d\dT/)
  t.equal(s.lines().length, 1, 'debug is filtered at info')
  t.equal(log.component('tunnel'), log.component('tunnel'), 'one child per component')
})

t.test('setLevel changes the root and every component', async (t) => {
  const s = logSink()
  const log = createLogger('warn', {}, s.dest)
  const a = log.component('a')
  const listener = a.child({ listener: 'x' }) // as the data plane makes them, before the change
  a.info('dropped')
  log.setLevel('debug')
  a.debug('kept')
  log.component('b').debug('kept too')
  listener.debug('a child of a component follows too')
  t.same(s.lines().map((l) => l.msg), ['kept', 'kept too', 'a child of a component follows too'])
})

t.test('private keys never reach a log line', async (t) => {
  const s = logSink()
  const log = createLogger('info', {}, s.dest)
  log.root.info({ key: 'PRIVATE1', cert: { key: 'PRIVATE2', privateKey: 'PRIVATE3' }, identity: { tls: { key: 'PRIVATE4', leaf: { keyPem: 'PRIVATE5' } } }, keyPem: 'PRIVATE6' }, 'certs')
  const text = JSON.stringify(s.lines())
  t.notMatch(text, /PRIVATE\d/)
  t.match(text, /\[redacted\]/)
  log.root.error({ file: 'a.yaml', path: 'spec.key' }, 'a policy problem')
  t.match(s.lines().at(-1), { file: 'a.yaml', path: 'spec.key' }, 'policy problem fields are not mistaken for keys')
})

t.test('flush does not throw', async (t) => {
  const log = createLogger('info', {}, logSink().dest)
  t.doesNotThrow(() => log.flush())
})

t.test('the default destination is stdout, asynchronous, bounded to LOG_BUFFER_MAX_BYTES', async (t) => {
  const log = createLogger('silent', {})
  const stream = (log.root as unknown as Record<symbol, { fd: number; sync: boolean; maxLength: number } | undefined>)[pino.symbols.streamSym]
  t.equal(stream?.fd, 1)
  t.equal(stream?.sync, false)
  t.equal(stream?.maxLength, LOG_BUFFER_MAX_BYTES)
  t.equal(LOG_BUFFER_MAX_BYTES, 8 * 1024 * 1024)
  t.equal(log.droppedLines, 0)
})

t.test('a stream passed in gets no bound: every line arrives', async (t) => {
  const s = logSink()
  const log = createLogger('info', {}, s.dest)
  const big = 'x'.repeat(1024 * 1024)
  for (let i = 0; i < 12; i++) log.root.info({ i, big }, 'big') // 12 MiB, more than the bound
  t.equal(s.lines().length, 12)
  t.equal(log.droppedLines, 0)
})

t.test('dropped writes are counted in lines, whatever their shape', async (t) => {
  const s = logSink()
  const log = createLogger('info', {}, s.dest)
  s.dest.emit('drop', '{"a":1}\n')
  s.dest.emit('drop', Buffer.from('{"a":1}\n{"a":2}\n{"a":3}\n'))
  s.dest.emit('drop', '{"a":1}\n{"a"') // a fragment without its newline is a line too
  s.dest.emit('drop', '')
  t.equal(log.droppedLines, 1 + 3 + 2)
})

/** The global gc(), without --expose-gc on the command line. */
function gc(): void {
  setFlagsFromString('--expose-gc')
  ;(runInNewContext('gc') as () => void)()
}

/** Bytes of log lines a SonicBoom holds: queued, plus the chunk being written. */
function held(stream: LogDestination): number {
  const s = stream as unknown as { _bufs: Array<string | Buffer>; _writingBuf: string | Buffer }
  return s._bufs.reduce((n, b) => n + Buffer.byteLength(b), 0) + Buffer.byteLength(s._writingBuf)
}

t.test('stdout that nobody reads: the buffer stays bounded and the lost lines are counted', async (t) => {
  // A FIFO that nobody reads, opened non-blocking (O_RDWR: the open does not wait for a
  // reader), so writes fail with EAGAIN as soon as the 64 KiB pipe is full: a stalled journald.
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-log-'))
  const fifo = join(dir, 'stdout')
  execFileSync('mkfifo', [fifo])
  const fd = openSync(fifo, constants.O_RDWR | constants.O_NONBLOCK)
  const dest = logDestination(fd)
  let dropEvents = 0
  dest.on('drop', () => { dropEvents++ })
  const log = createLogger('info', { node: 'n1' }, dest)
  const attacker = 'A'.repeat(4000)
  gc()
  const before = process.memoryUsage().heapUsed
  let written = 0
  let lines = 0
  while (written < 50 * 1024 * 1024) { // 50 MB of log, as fast as the data path could make it
    log.component('hbone').warn({ peer: '10.0.0.9:40000', value: attacker, n: lines }, 'refused a stream')
    written += attacker.length + 100
    lines++
  }
  // Let the writer meet the full pipe (EAGAIN, then retries every 100 ms).
  await new Promise((resolve) => setTimeout(resolve, 250))
  gc()
  const grown = process.memoryUsage().heapUsed - before

  t.ok(held(dest) <= LOG_BUFFER_MAX_BYTES, `held ${held(dest)} bytes, at most the bound`)
  t.ok(held(dest) > LOG_BUFFER_MAX_BYTES / 2, 'the buffer did fill (the pipe really is not read)')
  t.ok(grown < LOG_BUFFER_MAX_BYTES + 16 * 1024 * 1024, `heap grew by ${Math.round(grown / 1048576)} MiB for 50 MB of log`)
  t.ok(log.droppedLines > lines / 2, `${log.droppedLines} of ${lines} lines dropped`)
  t.equal(log.droppedLines, dropEvents, 'one line per drop (pino writes a line at a time)')

  // Read the FIFO so the queued lines go out, then close everything.
  const reader = new Socket({ fd: openSync(fifo, constants.O_RDONLY | constants.O_NONBLOCK), readable: true, writable: false })
  let read = 0
  reader.on('data', (chunk: Buffer) => { read += chunk.length })
  await new Promise<void>((resolve) => dest.once('drain', resolve))
  await new Promise<void>((resolve) => { dest.once('close', resolve); dest.end() })
  reader.destroy()
  rmSync(dir, { recursive: true, force: true })
  t.ok(read > LOG_BUFFER_MAX_BYTES / 2, 'what was held went out once stdout was read again')
})
