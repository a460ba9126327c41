// DestinationPolicy: how callers treat a Service's endpoints (Istio DestinationRule, with
// Linkerd's and Envoy's defaults). Every field has a default, so a Service without any
// DestinationPolicy behaves exactly like one with an empty spec.
import { z } from 'zod'
import { documentSchema, duration, dnsLabel, namespacedMetadata, percent } from './common.ts'

export const DEFAULT_DESTINATION = {
  loadBalancer: 'P2C_EWMA',
  // Envoy's circuit-breaker defaults, and Istio's connect timeout.
  connectionPool: { maxConnections: 1024, maxPendingRequests: 1024, maxRequests: 1024, connectTimeout: '10s' },
  // Istio/Envoy: 5 consecutive 5xx, every 10 s, eject for 30 s (times the ejection count),
  // at most 10% of endpoints; gateway-error ejection off unless set.
  outlierDetection: { consecutive5xxErrors: 5, consecutiveGatewayErrors: 0, interval: '10s', baseEjectionTime: '30s', maxEjectionPercent: 10 },
  // Linkerd's budget: retries may add 20% to the request rate, plus 10 retries/s always.
  retryBudget: { percent: 20, minRetriesPerSecond: 10, ttl: '10s' },
} as const

const count = z.number().int().min(0).max(1_000_000)

const bucket = z.strictObject({
  maxTokens: z.number().int().min(1).max(1_000_000),
  tokensPerFill: z.number().int().min(1).max(1_000_000).default(1),
  fillInterval: duration,
})

export const DestinationSpecSchema = z.strictObject({
  targetRefs: z.array(z.strictObject({ group: z.literal('').optional(), kind: z.literal('Service').default('Service'), name: dnsLabel })).min(1).max(16),
  loadBalancer: z.strictObject({
    type: z.enum(['P2C_EWMA', 'LEAST_REQUEST', 'ROUND_ROBIN', 'RANDOM']).default(DEFAULT_DESTINATION.loadBalancer),
  }).prefault({}),
  connectionPool: z.strictObject({
    maxConnections: count.default(DEFAULT_DESTINATION.connectionPool.maxConnections),
    maxPendingRequests: count.default(DEFAULT_DESTINATION.connectionPool.maxPendingRequests),
    maxRequests: count.default(DEFAULT_DESTINATION.connectionPool.maxRequests),
    connectTimeout: duration.prefault(DEFAULT_DESTINATION.connectionPool.connectTimeout),
  }).prefault({}),
  outlierDetection: z.strictObject({
    consecutive5xxErrors: count.default(DEFAULT_DESTINATION.outlierDetection.consecutive5xxErrors),
    consecutiveGatewayErrors: count.default(DEFAULT_DESTINATION.outlierDetection.consecutiveGatewayErrors),
    interval: duration.prefault(DEFAULT_DESTINATION.outlierDetection.interval),
    baseEjectionTime: duration.prefault(DEFAULT_DESTINATION.outlierDetection.baseEjectionTime),
    maxEjectionPercent: percent.default(DEFAULT_DESTINATION.outlierDetection.maxEjectionPercent),
  }).prefault({}),
  retryBudget: z.strictObject({
    percent: percent.default(DEFAULT_DESTINATION.retryBudget.percent),
    minRetriesPerSecond: count.default(DEFAULT_DESTINATION.retryBudget.minRetriesPerSecond),
    ttl: duration.prefault(DEFAULT_DESTINATION.retryBudget.ttl),
  }).prefault({}),
  // Envoy local rate limit: a token bucket per endpoint on its own host. Off unless set.
  // `identity`: also one bucket per calling identity (Linkerd's HTTPLocalRateLimitPolicy), so
  // one noisy caller cannot take the whole budget.
  rateLimit: bucket.extend({ identity: bucket.optional() }).optional(),
})

export const DestinationPolicySchema = documentSchema('DestinationPolicy', namespacedMetadata, DestinationSpecSchema)
