// The benches' profile summary: a daemon with worker threads writes one .cpuprofile per
// thread, and an installed daemon runs dist/ from a scratch package; both must be read as ours.
import t from 'tap'
import { summarise, type CpuProfile } from '../../../scripts/bench/cpuprofile-summary.ts'

const frame = (functionName: string, url: string, lineNumber = 0) => ({ functionName, url, lineNumber })

function profile(nodes: { name: string; url: string; hits: number }[], wallUs: number): CpuProfile {
  return {
    startTime: 1_000_000,
    endTime: 1_000_000 + wallUs,
    nodes: nodes.map((n, i) => ({ id: i + 1, callFrame: frame(n.name, n.url, 9), hitCount: n.hits })),
  }
}

t.test('threads are summed; dist/ files of a scratch package are named by their source and owned by hostmesh', async (t) => {
  const main = profile([
    { name: '(idle)', url: '', hits: 90 },
    { name: 'pick', url: 'file:///tmp/hostmesh-bench-peer-x/pkg/dist/daemon/balance/balancer.js', hits: 10 },
  ], 100_000)
  const worker = profile([
    { name: '(idle)', url: '', hits: 50 },
    { name: 'writeBuffer', url: '', hits: 30 },
    { name: 'pick', url: 'file:///tmp/hostmesh-bench-peer-x/pkg/dist/daemon/balance/balancer.js', hits: 20 },
  ], 100_000)
  const s = summarise([main, worker])
  t.equal(s.wallMs, 200, 'wall: both threads')
  t.equal(s.idleMs, 140)
  t.equal(s.busyMs, 60)
  t.same(s.functions.map((f) => [f.name, f.ms]), [['pick daemon/balance/balancer.ts:10', 30], ['writeBuffer', 30]], 'the same function in two threads adds up, under its source path')
  t.same(s.owners.find((o) => o.name === 'hostmesh daemon/balance'), { name: 'hostmesh daemon/balance', ms: 30, share: 0.5 })
  t.equal(summarise(main).busyMs, 10, 'one profile alone still works')
})
