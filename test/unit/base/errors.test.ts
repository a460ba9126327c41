import t from 'tap'
import { AdminBindError } from '../../../daemon/admin/errors.ts'
import { ListenerBindError } from '../../../daemon/listeners/errors.ts'
import { ListenFdsError, SdAddonUnavailableError } from '../../../daemon/systemd/errors.ts'
import { AdminRequestError, UsageError } from '../../../daemon/cli/errors.ts'
import { ConfigError } from '../../../daemon/config/errors.ts'
import { causeChain, HostmeshError, isHostmeshError } from '../../../base/errors.ts'
import { OrigDstLookupError, OrigDstUnavailableError } from '../../../daemon/intercept/errors.ts'
import { SourceReadError } from '../../../policy/errors.ts'

t.test('every error class has a stable HOSTMESH_ERR_ code and its own name', async (t) => {
  const cases: Array<[HostmeshError, string]> = [
    [new AdminBindError('x'), 'HOSTMESH_ERR_ADMIN_BIND'],
    [new ListenerBindError('x'), 'HOSTMESH_ERR_LISTEN'],
    [new ListenFdsError('x'), 'HOSTMESH_ERR_LISTEN_FDS'],
    [new SdAddonUnavailableError('p'), 'HOSTMESH_ERR_SD_UNAVAILABLE'],
    [new UsageError('x'), 'HOSTMESH_ERR_USAGE'],
    [new AdminRequestError('http://127.0.0.1:15000/stats', 'x'), 'HOSTMESH_ERR_ADMIN_REQUEST'],
    [new ConfigError('f', []), 'HOSTMESH_ERR_CONFIG'],
    [new OrigDstUnavailableError('p'), 'HOSTMESH_ERR_ORIGDST_UNAVAILABLE'],
    [new OrigDstLookupError('ENOENT', 'x'), 'HOSTMESH_ERR_ORIGDST_LOOKUP'],
    [new SourceReadError('f', 'x'), 'HOSTMESH_ERR_SOURCE_READ'],
  ]
  for (const [err, code] of cases) {
    t.equal(err.code, code)
    t.equal(err.name, err.constructor.name)
    t.ok(isHostmeshError(err))
    t.ok(err instanceof Error)
  }
  t.notOk(isHostmeshError(new Error('plain')))
})

t.test('cause chains are kept and walkable, and bounded', async (t) => {
  const root = new Error('EACCES')
  const mid = new SourceReadError('/etc/x', 'cannot open', { cause: root })
  const top = new ConfigError('/etc/x', [], { cause: mid, summary: 'cannot read' })
  t.same(causeChain(top), [top, mid, root])
  t.equal(top.message, 'cannot read')
  const a = new Error('a')
  const b = new Error('b', { cause: a })
  ;(a as { cause?: unknown }).cause = b
  t.equal(causeChain(a, 5).length, 5)
})

t.test('a located problem list is formatted file:line:col: message', async (t) => {
  const err = new ConfigError('h.yaml', [{ file: 'h.yaml', line: 3, col: 7, key: 'ports.x', message: 'ports.x: bad' }])
  t.equal(err.message, 'invalid node config h.yaml\nh.yaml:3:7: ports.x: bad')
  t.ok(Object.isFrozen(err.problems))
})
