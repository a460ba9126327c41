// DestinationPolicy connectionPool.maxConnections on a TCP service port, on two real hosts with
// the real daemon and iptables capture: checkout (uid 2001) on node-a opens 60 connections at
// once to a Service capped at 20 whose endpoint is payments-v1 on node-b, and holds them.
// Exactly 20 reach the server and stay; the other 40 are reset at once, each recorded with
// flag UO and counted; the breaker's gauge says open while they are held. Once they close the
// slots are free again, all of them and no more.
import { availableParallelism } from 'node:os'
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { testNet, type HostProcess, type TestHost } from '../../scripts/netns/hosts.ts'
import { meshNodeConfigs, untilReady } from '../../scripts/netns/mesh-nodes.ts'
import { logLines, parseMetrics, total } from '../../scripts/demo/telemetry.ts'
import { until } from '../helpers/admin.ts'
import { CLI } from '../helpers/cli.ts'
import { e2eSkip } from '../helpers/e2e.ts'
import { accessLog, assertQuiet } from '../helpers/mesh-checks.ts'

const EXAMPLES = new URL('../../policy/examples/', import.meta.url).pathname
const SERVER = new URL('../../scripts/netns/workloads/identify-server.ts', import.meta.url).pathname
const HOLD = new URL('./fixtures/hold-client.ts', import.meta.url).pathname
const NODE = process.execPath
const LIMIT = 20
const OPENED = 60
const SERVICE = 'ledger-capped.shop'
const EXTRA = `apiVersion: hostmesh.io/v1alpha1
kind: Service
metadata: {name: ledger-capped, namespace: shop}
spec: {addresses: [10.96.0.60], ports: [{name: ledger, port: 7000, protocol: tcp}], selector: {app: payments, version: v1}}
---
apiVersion: hostmesh.io/v1alpha1
kind: DestinationPolicy
metadata: {name: ledger-capped, namespace: shop}
spec: {targetRefs: [{name: ledger-capped}], connectionPool: {maxConnections: ${LIMIT}}}
`

interface Held { held: number; refused: number; refusedMaxMs: number; errors: Record<string, number> }

t.test(`maxConnections ${LIMIT} on a TCP port: ${OPENED} held connections, ${LIMIT} through, the rest reset with UO`, { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: ['node-a', 'node-b'] })
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-tcp-breaker-'))
  cpSync(EXAMPLES, join(dir, 'policy.d'), { recursive: true })
  writeFileSync(join(dir, 'policy.d', '60-breaker.yaml'), EXTRA)
  const configs = await meshNodeConfigs(net.hosts, dir, { policyDir: join(dir, 'policy.d'), extra: 'drainSeconds: 1\n' })
  const [a, b] = [net.host('node-a'), net.host('node-b')]
  const daemons = new Map<string, HostProcess>(net.hosts.map((h) => [h.name, h.spawn([NODE, CLI, 'run', '--config', configs.get(h.name)!])]))
  for (const h of net.hosts) await untilReady(h, daemons.get(h.name)!)
  await b.spawn([NODE, SERVER, 'payments-v1', '7000'], { uid: 2002, gid: 2002 }).waitFor(/listening/)
  const admin = async (h: TestHost, path: string): Promise<string> => (await h.exec(['curl', '-sS', '-m', '2', `http://127.0.0.1:15000${path}`])).stdout
  const breaker = async (): Promise<{ open: number; overflow: number }> => {
    const m = parseMetrics(await admin(a, '/metrics'))
    const labels = { destination_service: SERVICE, resource: 'connections' }
    return { open: total(m, 'hostmesh_circuit_breaker_open', labels), overflow: total(m, 'hostmesh_circuit_breaker_overflow_total', labels) }
  }
  // The connections payments-v1 has accepted and not closed (node-b's hostmesh dials it there).
  const atServer = async (): Promise<number> => (await b.mustExec(['ss', '-Htn', 'state', 'established', '( sport = :7000 )'])).split('\n').filter((l) => l.trim()).length
  const hold = async (n: number): Promise<{ proc: HostProcess; result: Held }> => {
    const proc = a.spawn([NODE, HOLD, '10.96.0.60', '7000', String(n)], { uid: 2001, gid: 2001 })
    const m = await proc.waitFor(/\{"held":.*\}/, 20_000)
    return { proc, result: JSON.parse(m[0]) as Held }
  }
  const uo = (): Record<string, unknown>[] => accessLog(daemons.get('node-a')!.output).filter((l) => l.reporter === 'source' && l.responseFlags === 'UO')

  const lines = logLines(daemons.get('node-a')!.output)
  t.ok(lines.some((l) => l.msg === 'policy loaded'), 'the policy is loaded')

  const first = await hold(OPENED)
  t.match(first.result, { held: LIMIT, refused: OPENED - LIMIT, errors: { ECONNRESET: OPENED - LIMIT } }, `${LIMIT} reached the server, the rest were reset: ${JSON.stringify(first.result)}`)
  t.ok(first.result.refusedMaxMs < 2000, `the refused ones were closed promptly (the last ${first.result.refusedMaxMs} ms after the first connect)`)
  await until(async () => (await atServer()) === LIMIT, `payments-v1 to hold ${LIMIT} connections`, 5000).catch(() => undefined)
  t.equal(await atServer(), LIMIT, `payments-v1 has exactly ${LIMIT} connections`)
  t.same(await breaker(), { open: 1, overflow: OPENED - LIMIT }, 'the breaker is open, and counted each refusal')
  await until(() => uo().length >= OPENED - LIMIT, 'the UO records', 5000).catch(() => undefined)
  const refused = uo()
  t.equal(refused.length, OPENED - LIMIT, 'one UO record per refused connection')
  t.match(refused[0], { dst: { service: SERVICE }, error: `${SERVICE}: over its circuit breaker's maxConnections (${LIMIT})` })
  const warned = (daemons.get('node-a')!.output.match(/connection refused: the destination service is at its circuit breaker's maxConnections/g) ?? []).length
  // Each data-path thread logs the opening it saw once (workers: auto, one per CPU here).
  t.ok(warned >= 1 && warned <= availableParallelism(), `logged once per worker thread at most, not once per refusal: ${warned}`)

  await new Promise((r) => setTimeout(r, 1000))
  t.notMatch(first.proc.output, /"lost"/, 'the held connections are still open a second later')
  t.equal(await atServer(), LIMIT, 'and still at the server')

  await first.proc.stop()
  await until(async () => (await breaker()).open === 0 && (await atServer()) === 0, 'the breaker to close and the server to see every connection end', 10_000)
  t.pass('closed: the breaker closes')

  const again = await hold(LIMIT + 1)
  t.match(again.result, { held: LIMIT, refused: 1 }, `after closing, new connections fit again: all ${LIMIT} slots came back, and no more (${JSON.stringify(again.result)})`)
  t.equal((await breaker()).overflow, OPENED - LIMIT + 1)
  await again.proc.stop()
  await until(async () => (await breaker()).open === 0, 'the breaker to close', 10_000)
  await assertQuiet(t, [a, b])
})
