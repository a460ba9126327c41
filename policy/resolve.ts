// Reference resolution shared by validation (which reports what does not resolve) and
// compilation (which only runs once everything does), so both read references the same way.
import type { PolicyIndex } from './index-docs.ts'
import type { LoadedDoc } from './load.ts'

type ServicePortSpec = LoadedDoc<'Service'>['doc']['spec']['ports'][number]

export interface ServiceRef {
  readonly name: string
  readonly namespace?: string | undefined
  readonly port?: number | undefined
}

export type Resolved =
  | { readonly ok: true; readonly service: LoadedDoc<'Service'>; readonly ports: readonly ServicePortSpec[] }
  | { readonly ok: false; readonly field: 'name' | 'port'; readonly message: string }

/** A Service in `ref.namespace` (default: the referring namespace), and its port(s). */
export function resolveServiceRef(index: PolicyIndex, fromNamespace: string, ref: ServiceRef): Resolved {
  const key = `${ref.namespace ?? fromNamespace}/${ref.name}`
  const service = index.services.get(key)
  if (!service) {
    const known = [...index.services.keys()]
    return { ok: false, field: 'name', message: `unknown Service "${key}"; expected one of: ${known.length ? known.join(', ') : '(no Services defined)'}` }
  }
  const ports = service.doc.spec.ports
  if (ref.port === undefined) return { ok: true, service, ports }
  const port = ports.find((p) => p.port === ref.port)
  if (!port) return { ok: false, field: 'port', message: `Service "${key}" has no port ${ref.port}; its ports are ${ports.map((p) => p.port).join(', ')}` }
  return { ok: true, service, ports: [port] }
}

export function servicePortKey(serviceKey: string, port: number): string {
  return `${serviceKey}:${port}`
}

export function serviceKeyOf(d: LoadedDoc<'Service'>): string {
  return `${d.doc.metadata.namespace}/${d.doc.metadata.name}`
}

export function isHttpProtocol(protocol: string): boolean {
  return protocol === 'http' || protocol === 'http2' || protocol === 'grpc'
}

/** Workloads a Service selects: same namespace, every selector label equal. */
export function selectedWorkloads(index: PolicyIndex, service: LoadedDoc<'Service'>): LoadedDoc<'Workload'>[] {
  const selector = service.doc.spec.selector
  if (!selector) return []
  const ns = service.doc.metadata.namespace
  // Start from the smallest candidate list among the selector's labels, then check the rest.
  let candidates = index.workloadsByLabel.get(`${ns}\0`) ?? []
  for (const [k, v] of Object.entries(selector)) {
    const list = index.workloadsByLabel.get(`${ns}\0${k}=${v}`) ?? []
    if (list.length < candidates.length) candidates = list
  }
  return candidates.filter((w) => labelsMatch(selector, w.doc.metadata.labels))
}

export function labelsMatch(selector: Readonly<Record<string, string>>, labels: Readonly<Record<string, string>>): boolean {
  for (const [k, v] of Object.entries(selector)) if (labels[k] !== v) return false
  return true
}

/** Where a workload is reached: its own addresses, its match address, or its node's. */
export function workloadAddresses(index: PolicyIndex, w: LoadedDoc<'Workload'>): readonly string[] {
  const spec = w.doc.spec
  if (spec.addresses?.length) return spec.addresses
  if (spec.match.address) return [spec.match.address]
  return index.nodes.get(spec.node)?.doc.spec.addresses ?? []
}
