// The admin listener's caps, apart from the server so the node config schema can name them
// without loading it (and without a cycle: the server reads the schema's isLoopback).

/** admin.maxConnections' default: Prometheus, a few dashboards and CLIs need far fewer. */
export const DEFAULT_ADMIN_MAX_CONNECTIONS = 128

/**
 * Any local uid reaches the port, so a slow client must not hold a connection: its request
 * head has 10 s (as http.headerTimeout), the whole request 30 s, checked every second
 * (Node checks every 30 s by default).
 */
export const ADMIN_TIMEOUTS = Object.freeze({ headersTimeout: 10_000, requestTimeout: 30_000, connectionsCheckingInterval: 1000 })
