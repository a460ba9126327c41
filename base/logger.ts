// The Logger every layer is handed. policy/ and certs/ log through it without importing the
// daemon, which owns the one root logger (daemon/log/logger.ts: createLogger) and gives each
// component its child. A type only: nothing here runs.
export type { Logger } from 'pino'
