// What the demo reads back from the daemons: their JSON log lines (pino, on stdout; the
// access log is the lines with `"access":"tcp"`) and their Prometheus metrics.

export interface LogLine {
  readonly [key: string]: unknown
}

/** One access-log line (docs/mesh.md, "Access log"). */
export interface AccessLine {
  readonly reporter: 'source' | 'destination'
  readonly listener: 'outbound' | 'hbone' | 'inbound-plaintext'
  readonly src: { readonly address: string | null; readonly workload: string; readonly namespace: string; readonly principal: string }
  readonly dst: { readonly address: string | null; readonly service: string; readonly workload: string; readonly namespace: string; readonly principal: string }
  readonly upstream: string | null
  readonly security: 'mutual_tls' | 'none'
  /** Envoy's response flags: "-", UAEX (denied), UF (upstream failure), UO (overflow), NR (no route), DC (client left first). */
  readonly responseFlags: string
  readonly bytesSent: number
  readonly bytesReceived: number
  readonly durationMs: number
  readonly error: string | null
}

export interface Sample {
  readonly name: string
  readonly labels: Readonly<Record<string, string>>
  readonly value: number
}

/** The JSON lines of a daemon's output (other lines, and a line cut at either end, are skipped). */
export function logLines(output: string): LogLine[] {
  const out: LogLine[] = []
  for (const line of output.split('\n')) {
    if (!line.startsWith('{')) continue
    try {
      out.push(JSON.parse(line) as LogLine)
    } catch {
      // a partial line: the output was cut there
    }
  }
  return out
}

export function accessLines(output: string): AccessLine[] {
  return logLines(output).filter((l) => l['access'] === 'tcp') as unknown as AccessLine[]
}

/** Prometheus text format: `name{a="x",b="y"} value` lines; comments skipped. */
export function parseMetrics(text: string): Sample[] {
  const out: Sample[] = []
  for (const line of text.split('\n')) {
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(?:\{(.*)\})?\s+(\S+)/.exec(line)
    if (!m) continue
    const labels: Record<string, string> = {}
    for (const l of (m[2] ?? '').matchAll(/([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\]|\\.)*)"/g)) labels[l[1]!] = l[2]!.replace(/\\(.)/g, (_, c: string) => (c === 'n' ? '\n' : c))
    out.push({ name: m[1]!, labels, value: Number(m[3]) })
  }
  return out
}

/** The sum of `name` over the samples whose labels include every label of `match`. */
export function total(samples: readonly Sample[], name: string, match: Readonly<Record<string, string>> = {}): number {
  let sum = 0
  for (const s of samples) {
    if (s.name === name && Object.entries(match).every(([k, v]) => s.labels[k] === v)) sum += s.value
  }
  return sum
}
