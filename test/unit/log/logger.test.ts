import t from 'tap'
import { createLogger } from '../../../daemon/log/logger.ts'
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
