// The reload says which resilience fields the data path does not apply yet (#13), so the gap
// between what a policy asks and what hostmesh does is never silent.
import { readdirSync, readFileSync } from 'node:fs'
import { join } from 'node:path'
import t from 'tap'
import { formatProblem } from '../../../policy/errors.ts'
import { hashFiles } from '../../../policy/load.ts'
import { buildSnapshot } from '../../../policy/pipeline.ts'
import { notEnforced } from '../../../daemon/run/policy-reload.ts'

const EXAMPLES = new URL('../../../policy/examples/', import.meta.url).pathname

t.test('the example policy: the retry and two connection-pool limits are named (timeouts, faults, rate limits and maxRequests are enforced)', async (t) => {
  const files = readdirSync(EXAMPLES).filter((f) => f.endsWith('.yaml')).sort().map((f, i) => ({ path: join(EXAMPLES, f), text: readFileSync(join(EXAMPLES, f), 'utf8'), sha256: String(i) }))
  const r = buildSnapshot({ dir: EXAMPLES, missing: false, files, hash: hashFiles(files), problems: [] }, { generation: 1, trustDomain: 'cluster.local' })
  if (!r.ok) throw new Error(r.problems.map(formatProblem).join('\n'))
  t.same(notEnforced(r.snapshot), [
    'DestinationPolicy/shop/fraud.connectionPool.maxConnections',
    'DestinationPolicy/shop/fraud.connectionPool.maxPendingRequests',
    'HTTPRoute/shop/fraud#0.retry',
  ])
})
