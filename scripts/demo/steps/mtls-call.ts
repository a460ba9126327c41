// Step 1: checkout calls the payments VIP across hosts. The destination's hostmesh says who
// called (the peer certificate's SPIFFE ID) and which workload it reached; tcpdump on the
// caller's link shows TLS 1.3 on the HBONE port and never the payload, which a plaintext
// control call (the same bytes, outside the mesh) shows plainly in the same capture.
import { randomBytes } from 'node:crypto'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import type { Mesh } from '../mesh.ts'
import { readPcap } from '../pcap.ts'
import type { ClientResult } from '../programs.ts'
import { uidOf } from '../scenario.ts'
import { checker, type StepOutcome } from '../step.ts'
import { accessLines } from '../telemetry.ts'
import { occurrences, tlsConnections, type TlsConnection } from '../tls-wire.ts'

const PAYLOAD_BYTES = 4000
/** The control server's port: no workload's, so nothing on the way redirects it. */
const CONTROL_PORT = 7777

export interface CallResult {
  readonly source: { readonly workload: string; readonly node: string; readonly uid: number; readonly principal: string }
  readonly target: string
  /** The first line the server wrote: its name and the peer address it saw. */
  readonly answer: string | null
  readonly sent: number
  readonly echoed: number
  /** The destination hostmesh's access-log line for the call. */
  readonly destination: { readonly node: string; readonly sourcePrincipal: string; readonly sourceWorkload: string; readonly workload: string; readonly principal: string; readonly bytesToWorkload: number; readonly bytesFromWorkload: number } | null
}

export interface WireResult {
  readonly capturedOn: string
  readonly packets: number
  readonly hbonePort: number
  readonly hbone: readonly TlsConnection[]
  readonly marker: string
  readonly markerInMesh: number
  readonly control: string
  readonly markerInControl: number
}

export async function mtlsCall(mesh: Mesh): Promise<StepOutcome<{ call: CallResult; wire: WireResult }>> {
  const { caller, canary, servers } = mesh.scenario
  const from = mesh.host(caller.node)
  const controlHost = mesh.host(servers[0]!.workload.node)
  const hbonePort = mesh.snapshot.nodes.get(controlHost.name)!.hbonePort
  const marker = `hostmesh-demo-${randomBytes(4).toString('hex')}.`
  const { node, server, client } = mesh.programs
  // As root, which hostmesh (running as root) never captures: plain TCP, the control.
  const control = controlHost.spawn([node, server, 'plaintext-control', String(CONTROL_PORT)])
  await control.waitFor(/listening/)
  const pcap = join(mesh.dir, 'wire.pcap')
  const dump = from.spawn(['tcpdump', '-Z', 'root', '--immediate-mode', '-U', '-n', '-i', 'eth0', '-w', pcap, 'tcp'])
  await dump.waitFor(/listening on/)
  const mark = mesh.logMark()
  const target = `${canary.vip}:${canary.port}`
  const res = await mesh.runAs<ClientResult>(caller, 'client', [canary.vip, String(canary.port), String(PAYLOAD_BYTES), marker])
  const ctl = JSON.parse(await from.mustExec([node, client, controlHost.ipv4, String(CONTROL_PORT), String(PAYLOAD_BYTES), marker], { timeoutMs: 30_000 })) as ClientResult
  // The destination logs the connection once both ends closed: wait for it (bounded).
  let line: { node: string; l: ReturnType<typeof accessLines>[number] } | undefined
  for (let i = 0; i < 30 && !line; i++) {
    for (const [n, out] of mesh.logsSince(mark)) {
      const l = accessLines(out).find((x) => x.reporter === 'destination' && x.src.principal === caller.identity)
      if (l) line = { node: n, l }
    }
    if (!line) await new Promise((r) => setTimeout(r, 100))
  }
  await dump.stop('SIGINT')
  await control.stop()
  const cap = readPcap(readFileSync(pcap))
  const isControl = (s: { sport: number; dport: number }): boolean => s.sport === CONTROL_PORT || s.dport === CONTROL_PORT
  const call: CallResult = {
    source: { workload: caller.name, node: caller.node, uid: uidOf(caller), principal: caller.identity },
    target, answer: res.first, sent: res.sent, echoed: res.echoed,
    destination: line ? {
      node: line.node, sourcePrincipal: line.l.src.principal, sourceWorkload: line.l.src.workload,
      workload: line.l.dst.workload, principal: line.l.dst.principal, bytesToWorkload: line.l.bytesSent, bytesFromWorkload: line.l.bytesReceived,
    } : null,
  }
  const wire: WireResult = {
    capturedOn: `${from.name} eth0`, packets: cap.packets, hbonePort,
    hbone: tlsConnections(cap.streams, hbonePort),
    marker, markerInMesh: occurrences(cap.streams.filter((s) => !isControl(s)), marker),
    control: `${controlHost.ipv4}:${CONTROL_PORT}`, markerInControl: occurrences(cap.streams.filter(isControl), marker),
  }

  const { check, problems } = checker()
  const serverNames = servers.map((s) => s.workload.name)
  check(res.sent === PAYLOAD_BYTES && res.echoed === PAYLOAD_BYTES, `the call should send and get back ${PAYLOAD_BYTES} bytes: ${JSON.stringify(res)}`)
  check(serverNames.includes(res.first?.split(' ')[0] ?? ''), `a payments server should answer: ${JSON.stringify(res)}`)
  check(call.destination?.sourcePrincipal === caller.identity && serverNames.includes(call.destination.workload) && call.destination.node !== caller.node,
    `another host's hostmesh should log ${caller.identity} reaching a payments workload: ${JSON.stringify(call.destination)}`)
  const tls13 = wire.hbone.filter((c) => c.serverHello?.version === 'TLS 1.3')
  check(tls13.length > 0, `the capture should show a TLS 1.3 handshake on :${hbonePort}: ${JSON.stringify(wire.hbone)}`)
  check(tls13.some((c) => c.toServer.applicationDataBytes >= PAYLOAD_BYTES && c.toClient.applicationDataBytes >= PAYLOAD_BYTES), `the ${PAYLOAD_BYTES} bytes each way should travel as TLS application data`)
  check(wire.markerInMesh === 0, `the payload marker should never appear in the mesh traffic; it did ${wire.markerInMesh} times`)
  check(ctl.echoed === PAYLOAD_BYTES && wire.markerInControl > 0, `the plaintext control call should show the marker in the capture: ${JSON.stringify(ctl)}, ${wire.markerInControl} times`)

  const [answerer, seenFrom] = res.first?.split(' ') ?? []
  const lines = [
    `${caller.name} (uid ${uidOf(caller)} on ${caller.node}) → payments VIP ${target}: ${answerer ?? 'nobody'} answered${seenFrom ? ` (it saw the connection come from ${seenFrom}: its own node's hostmesh)` : ''}; ${res.sent} bytes sent, ${res.echoed} echoed`,
    call.destination
      ? `${call.destination.node}'s hostmesh logged: ${call.destination.sourcePrincipal} (workload ${call.destination.sourceWorkload}) → ${call.destination.workload} as ${call.destination.principal}, ${call.destination.bytesToWorkload} bytes in, ${call.destination.bytesFromWorkload} out`
      : 'no destination hostmesh logged the call',
    ...tls13.slice(0, 1).map((c) => `on the wire (tcpdump, ${wire.capturedOn}, ${wire.packets} packets): ${c.client} → ${c.server} negotiated ${c.serverHello!.version} (${c.serverHello!.cipher}); ClientHello SNI ${c.clientHello?.sni}, ALPN ${c.clientHello?.alpn.join(',')}; then encrypted application_data records: ${c.toServer.records['application_data'] ?? 0} out (${c.toServer.applicationDataBytes} bytes), ${c.toClient.records['application_data'] ?? 0} back (${c.toClient.applicationDataBytes} bytes)`),
    `payload marker "${marker}": ${wire.markerInMesh} times in the mesh traffic; ${wire.markerInControl} times in a plaintext control call (same bytes, to ${wire.control} outside the mesh)`,
  ]
  return { data: { call, wire }, lines, problems }
}
