// Drain on the L7 path: on SIGTERM an HTTP/1.1 request in flight finishes within drainSeconds
// and its response says `Connection: close`; an HTTP/2 client gets a GOAWAY and its stream in
// flight finishes. Both for the source host's hostmesh and for the destination's.
import { cpSync, mkdtempSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import t from 'tap'
import { testNet, type HostProcess, type TestHost } from '../../scripts/netns/hosts.ts'
import { meshNodeConfigs, untilReady } from '../../scripts/netns/mesh-nodes.ts'
import { CLI } from '../helpers/cli.ts'
import { e2eSkip } from '../helpers/e2e.ts'

const EXAMPLES = new URL('../../policy/examples/', import.meta.url).pathname
const SERVER = new URL('../../scripts/netns/workloads/http-server.ts', import.meta.url).pathname
const NODE = process.execPath
// Everything to payments-v1 on node-b, so the destination is known.
const EXTRA = `apiVersion: hostmesh.io/v1alpha1
kind: HTTPRoute
metadata: {name: payments-slow, namespace: shop}
spec:
  parentRefs: [{name: payments, port: 80}]
  rules:
    - matches: [{path: {type: PathPrefix, value: /pay/slow}}, {path: {type: PathPrefix, value: /pay/v1}}]
      backendRefs: [{name: payments-v1, port: 80}]
`

t.test('drain: requests in flight finish, then the connection closes', { skip: e2eSkip() }, async (t) => {
  const net = await testNet(t, { hosts: ['node-a', 'node-b', 'node-c'] })
  const dir = mkdtempSync(join(tmpdir(), 'hostmesh-e2e-l7-drain-'))
  cpSync(EXAMPLES, join(dir, 'policy.d'), { recursive: true })
  writeFileSync(join(dir, 'policy.d', '60-e2e.yaml'), EXTRA)
  const configs = await meshNodeConfigs(net.hosts, dir, { policyDir: join(dir, 'policy.d'), extra: 'drainSeconds: 5\n' })
  const start = async (h: TestHost): Promise<HostProcess> => {
    const d = h.spawn([NODE, CLI, 'run', '--config', configs.get(h.name)!])
    await untilReady(h, d)
    return d
  }
  const [a, b] = [net.host('node-a'), net.host('node-b')]
  const daemons = new Map<string, HostProcess>()
  for (const h of net.hosts) daemons.set(h.name, await start(h))
  await b.spawn([NODE, SERVER, 'payments-v1', '8080'], { uid: 2002, gid: 2002 }).waitFor(/listening/)
  const curl = (args: string[]) => a.exec(['curl', '-sS', '-m', '15', '-i', ...args], { uid: 2001, gid: 2001, timeoutMs: 20_000 })

  for (const [side, host] of [['source', 'node-a'], ['destination', 'node-b']] as const) {
    await t.test(`HTTP/1.1 in flight while the ${side} hostmesh drains`, async (t) => {
      t.match((await curl(['http://10.96.0.20/pay/v1'])).stdout, /^HTTP\/1\.1 200/, 'the mesh works before the drain')
      const pending = curl(['http://10.96.0.20/pay/slow/1500'])
      await new Promise((r) => setTimeout(r, 400))
      const started = Date.now()
      const stopped = daemons.get(host)!.stop('SIGTERM', 8000)
      const r = await pending
      t.match(r.stdout, /^HTTP\/1\.1 200/, `the request in flight finished: ${r.stdout.slice(0, 200)} ${r.stderr}`)
      t.match(r.stdout, /"url":"\/pay\/slow\/1500"/, 'with the server\'s answer')
      if (side === 'source') t.match(r.stdout, /\r\nConnection: close\r\n/i, 'and told the client to close the connection')
      t.ok(Date.now() - started < 5000, 'within drainSeconds')
      t.match(await stopped, { code: 0 }, 'the daemon exits cleanly after the drain')
      // Its pooled upstream connections (HBONE sessions, keep-alive streams) went with the
      // drain: nothing held the process open after it.
      t.notMatch(daemons.get(host)!.output, /still held the event loop/, 'nothing held the event loop after the drain')
      if (!/^HTTP\/1\.1 200/.test(r.stdout)) t.comment(daemons.get('node-a')!.output.slice(-4000), daemons.get('node-b')!.output.slice(-4000))
      daemons.set(host, await start(net.host(host)))
    })
  }

  await t.test('HTTP/2 in flight while the source hostmesh drains: GOAWAY, the stream finishes', async (t) => {
    const pending = curl(['--http2-prior-knowledge', 'http://10.96.0.20/pay/slow/1500'])
    await new Promise((r) => setTimeout(r, 400))
    const stopped = daemons.get('node-a')!.stop('SIGTERM', 8000)
    const r = await pending
    t.match(r.stdout, /^HTTP\/2 200/, `the stream in flight finished: ${r.stdout.slice(0, 200)} ${r.stderr}`)
    t.match(r.stdout, /"httpVersion":"2\.0"/, 'HTTP/2 end to end')
    t.match(await stopped, { code: 0 })
    t.notMatch(daemons.get('node-a')!.output, /still held the event loop/, 'nothing held the event loop after the drain')
  })
})
