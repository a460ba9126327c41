// What the original destination is in the snapshot in force: a Service port, a mesh workload
// dialled at its own address, or nothing the mesh knows (also when there is no policy yet).
import { addressKey } from '../../../policy/ip.ts'
import type { Snapshot } from '../../../policy/snapshot.ts'
import type { Stage } from '../../../base/stage.ts'
import type { OutboundConnection } from '../outbound-connection.ts'

export function lookup(snapshot: () => Snapshot | undefined): Stage<OutboundConnection> {
  return async (x, next) => {
    const dst = x.dst!
    const snap = snapshot()
    if (!snap) {
      x.destination = { kind: 'unknown' }
      return next()
    }
    x.snapshot = snap
    const key = addressKey(dst.address, dst.port)
    const sp = snap.byDestination.get(key)
    if (sp) {
      x.destination = { kind: 'service', port: sp }
      return next()
    }
    // A mesh workload dialled at its own address (not through a Service): still a tunnel
    // with identities and authorization, never a plaintext pass-through (the daemon's own
    // connections are not captured, so passing through would skip the destination's policy).
    const w = snap.workloadByAddress.get(key)
    const node = w ? snap.nodes.get(w.node) : undefined
    if (w && node) {
      x.destination = { kind: 'workload' }
      x.target = {
        key: `workload:${w.key}:${dst.port}`, service: `${w.name}.${w.namespace}`, settings: snap.defaultDestination,
        endpoints: [{ address: dst.address, port: dst.port, workload: w.key, identity: w.identity, node }],
      }
      return next()
    }
    x.destination = { kind: 'unknown' }
    await next()
  }
}
