// Groups validated documents by kind and name. A name defined twice is reported at the second
// definition, pointing at the first; the first one stays in the index so later checks still run.
import type { SourceProblem } from './errors.ts'
import type { LoadedDoc } from './load.ts'
import type { Kind } from './schema/documents.ts'
import { keyName } from './schema-problems.ts'

export interface PolicyIndex {
  /** Node name → document */
  readonly nodes: ReadonlyMap<string, LoadedDoc<'Node'>>
  /** `namespace/name` → document, for every namespaced kind */
  readonly workloads: ReadonlyMap<string, LoadedDoc<'Workload'>>
  readonly services: ReadonlyMap<string, LoadedDoc<'Service'>>
  readonly httpRoutes: ReadonlyMap<string, LoadedDoc<'HTTPRoute'>>
  readonly tcpRoutes: ReadonlyMap<string, LoadedDoc<'TCPRoute'>>
  readonly destinationPolicies: ReadonlyMap<string, LoadedDoc<'DestinationPolicy'>>
  readonly authorizationPolicies: ReadonlyMap<string, LoadedDoc<'AuthorizationPolicy'>>
  /** `namespace\0key=value` → workloads with that label; `namespace\0` → all of the namespace. */
  readonly workloadsByLabel: ReadonlyMap<string, readonly LoadedDoc<'Workload'>[]>
}

export function problemAt(d: LoadedDoc, path: readonly PropertyKey[], message: string, which: 'key' | 'value' = 'value'): SourceProblem {
  const at = d.locate(path, which)
  const key = keyName(path)
  return { file: d.file, line: at.line, col: at.col, key, message: `${key}: ${message}` }
}

export function where(d: LoadedDoc, path: readonly PropertyKey[] = ['metadata', 'name']): string {
  const at = d.locate(path)
  return `${d.file}:${at.line}:${at.col}`
}

/** `namespace/name` for namespaced kinds, `name` for Nodes. */
export function nameOf(d: LoadedDoc): string {
  return d.key.slice(d.kind.length + 1)
}

export function indexDocs(docs: readonly LoadedDoc[]): { index: PolicyIndex; problems: SourceProblem[] } {
  const problems: SourceProblem[] = []
  const byKind = new Map<Kind, Map<string, LoadedDoc>>()
  for (const d of docs) {
    let m = byKind.get(d.kind)
    if (!m) byKind.set(d.kind, (m = new Map()))
    const name = nameOf(d)
    const first = m.get(name)
    if (first) {
      problems.push(problemAt(d, ['metadata', 'name'], `duplicate ${d.kind} "${name}": already defined at ${where(first)}`))
      continue
    }
    m.set(name, d)
  }
  // Load order (file name, then position), so "already defined/used at" points backwards,
  // at what the reader saw first. compile.ts sorts by name wherever order affects output.
  const get = <K extends Kind>(k: K): Map<string, LoadedDoc<K>> => (byKind.get(k) ?? new Map()) as Map<string, LoadedDoc<K>>
  const workloads = get('Workload')
  // Selectors are resolved through this index, not by scanning every workload per Service:
  // that scan made compile quadratic (10,000 services took 30 s).
  const workloadsByLabel = new Map<string, LoadedDoc<'Workload'>[]>()
  const add = (k: string, w: LoadedDoc<'Workload'>): void => {
    const list = workloadsByLabel.get(k)
    if (list) list.push(w)
    else workloadsByLabel.set(k, [w])
  }
  for (const w of workloads.values()) {
    const ns = w.doc.metadata.namespace
    add(`${ns}\0`, w)
    for (const [k, v] of Object.entries(w.doc.metadata.labels)) add(`${ns}\0${k}=${v}`, w)
  }
  return {
    index: {
      nodes: get('Node'),
      workloads,
      workloadsByLabel,
      services: get('Service'),
      httpRoutes: get('HTTPRoute'),
      tcpRoutes: get('TCPRoute'),
      destinationPolicies: get('DestinationPolicy'),
      authorizationPolicies: get('AuthorizationPolicy'),
    },
    problems,
  }
}
