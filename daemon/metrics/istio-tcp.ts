// Istio's standard TCP metrics, with its labels, so existing dashboards work. Every proxied
// connection is reported once by the source side (reporter="source") and once by the
// destination side (reporter="destination").
import { Counter, type Registry } from 'prom-client'

export const TCP_LABELS = ['reporter', 'source_workload', 'source_principal', 'destination_service', 'destination_workload', 'destination_principal', 'connection_security_policy', 'response_flags'] as const
export type TcpLabels = Record<(typeof TCP_LABELS)[number], string>

export interface TcpMetrics {
  opened(l: TcpLabels): void
  closed(l: TcpLabels, sent: number, received: number): void
  /**
   * A connection that never carried data: opened and closed at once, both under `l` (whose
   * response_flags is Envoy's flag: UAEX, UF, NR, DC), so opened = closed holds per series.
   */
  refused(l: TcpLabels): void
}

export function tcpMetrics(registry: Registry): TcpMetrics {
  const get = (name: string, help: string): Counter<(typeof TCP_LABELS)[number]> =>
    (registry.getSingleMetric(name) as Counter<(typeof TCP_LABELS)[number]> | undefined) ?? new Counter({ name, help, labelNames: [...TCP_LABELS], registers: [registry] })
  const opened = get('istio_tcp_connections_opened_total', 'TCP connections opened (Istio standard metric).')
  const closed = get('istio_tcp_connections_closed_total', 'TCP connections closed (Istio standard metric).')
  const sent = get('istio_tcp_sent_bytes_total', 'Bytes sent towards the destination during TCP connections (Istio standard metric).')
  const received = get('istio_tcp_received_bytes_total', 'Bytes received from the destination during TCP connections (Istio standard metric).')
  return {
    opened: (l) => opened.inc(l),
    closed: (l, s, r) => {
      closed.inc(l)
      sent.inc(l, s)
      received.inc(l, r)
    },
    refused: (l) => {
      opened.inc(l)
      closed.inc(l)
      sent.inc(l, 0)
      received.inc(l, 0)
    },
  }
}
