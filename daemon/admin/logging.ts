// /logging, as Envoy's: GET shows the level, POST /logging?level=debug changes it at runtime
// for the root logger and every component (children follow their parent's level). Not kept
// across a restart: the node config's logLevel is the lasting setting.
import { LOG_LEVELS, type LogLevel } from '../config/schema.ts'
import type { RootLogger } from '../log/logger.ts'
import type { AdminReply, AdminServer } from './server.ts'

const USAGE = `POST /logging?level=<${LOG_LEVELS.join('|')}>`

/** `also`: where else the new level goes (the worker threads' loggers). */
export function registerLogging(admin: AdminServer, logger: RootLogger, also: (level: LogLevel) => void = () => undefined): void {
  const log = logger.component('admin')
  admin.route('GET', '/logging', (_req, url) => {
    if (url.searchParams.has('level')) return badLevel(`GET /logging only shows the level; change it with ${USAGE}`)
    return { status: 200, body: { level: logger.root.level, levels: LOG_LEVELS } }
  })
  admin.route('POST', '/logging', (_req, url) => {
    const level = url.searchParams.get('level')
    if (level === null) return badLevel(`missing query parameter "level"; expected ${USAGE}`)
    if (!isLogLevel(level)) return badLevel(`query parameter "level" is "${level}"; expected one of ${LOG_LEVELS.join(', ')}`)
    const previous = logger.root.level
    // An operator's action, so it is logged at info: before the change when the new level
    // silences info, after it otherwise, so the line is written either way.
    // `from`/`to`, not `level`: that key is the line's own level label.
    const say = (): void => log.info({ from: previous, to: level }, 'log level changed through the admin port')
    const infoAfter = enables(logger, level, 'info')
    if (!infoAfter) say()
    logger.setLevel(level)
    also(level)
    if (infoAfter) say()
    return { status: 200, body: { level, previous } }
  })
}

function badLevel(error: string): AdminReply {
  return { status: 400, body: { error, parameter: 'level', allowed: LOG_LEVELS } }
}

function isLogLevel(s: string): s is LogLevel {
  return (LOG_LEVELS as readonly string[]).includes(s)
}

/** Whether a logger at `level` writes lines at `line` ("silent" writes none). */
function enables(logger: RootLogger, level: LogLevel, line: LogLevel): boolean {
  const values = logger.root.levels.values
  return level !== 'silent' && values[line]! >= values[level]!
}
