import t from 'tap'
import { LocalHostState } from '../../../daemon/limits/host-state.ts'
import { admitPlaintext } from '../../../daemon/limits/plaintext-limits.ts'

t.test('plaintext connections: per source first fills, then the total; a release frees one slot once', async (t) => {
  const host = new LocalHostState()
  const limits = { maxConnections: 3, maxConnectionsPerSource: 2 }
  const a1 = admitPlaintext(host, limits, '10.0.0.1')
  const a2 = admitPlaintext(host, limits, '10.0.0.1')
  t.same(admitPlaintext(host, limits, '10.0.0.1'), { refused: 'connections_per_source' }, 'a third from one source is over its share')
  const b1 = admitPlaintext(host, limits, '10.0.0.2')
  t.ok('release' in b1, 'another source still gets the last slot')
  t.same(admitPlaintext(host, limits, '10.0.0.3'), { refused: 'connections' }, 'then the total is full')
  t.equal(host.count('plaintext|connections').value, 3, 'a refusal holds no slot')
  if (!('release' in a1) || !('release' in a2)) throw new Error('expected slots')
  a1.release()
  a1.release()
  t.equal(host.count('plaintext|connections').value, 2, 'a release counts once')
  t.equal(host.count('plaintext|connections|10.0.0.1').value, 1)
  t.ok('release' in admitPlaintext(host, limits, '10.0.0.3'), 'the freed slot is taken again')
})
