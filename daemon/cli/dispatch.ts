// One dispatcher for every subcommand: parse, --help, run, and map errors to exit codes.
import { parseArgs } from 'node:util'
import { ConfigError } from '../config/errors.ts'
import { AdminBindError } from '../admin/errors.ts'
import { HostmeshError } from '../../base/errors.ts'
import { ListenerBindError } from '../listeners/errors.ts'
import type { CliIO, Command } from './command.ts'
import { runCommand } from './commands/run.ts'
import { caCommand } from './commands/ca.ts'
import { iptablesCommand } from './commands/iptables.ts'
import { statusCommand } from './commands/status.ts'
import { validateCommand } from './commands/validate.ts'
import { versionCommand } from './commands/version.ts'
import { UsageError } from './errors.ts'
import { EXIT } from './exit-codes.ts'

export const COMMANDS: readonly Command[] = [runCommand, validateCommand, iptablesCommand, caCommand, statusCommand, versionCommand]

export function usage(commands: readonly Command[] = COMMANDS): string {
  const width = Math.max(...commands.map((c) => c.name.length))
  return `Usage: hostmesh <command> [options]

hostmesh is a per-host service-mesh proxy: iptables capture, mTLS between hosts as each
workload's own identity, and routing policy from /etc/hostmesh/policy.d.

Commands:
${commands.map((c) => `  ${c.name.padEnd(width)}  ${c.summary}`).join('\n')}

Run 'hostmesh <command> --help' for a command's options.
`
}

export async function dispatch(argv: readonly string[], io: CliIO, commands: readonly Command[] = COMMANDS): Promise<number> {
  const [name, ...rest] = argv
  if (name === undefined || name === '--help' || name === '-h' || name === 'help') {
    const topic = name === 'help' ? commands.find((c) => c.name === rest[0]) : undefined
    io.out(topic ? topic.help : usage(commands))
    return EXIT.OK
  }
  if (name === '--version' || name === '-v') return dispatch(['version'], io, commands)
  const command = commands.find((c) => c.name === name)
  if (!command) {
    io.err(`hostmesh: unknown command "${name}"\n\n${usage(commands)}`)
    return EXIT.USAGE
  }
  try {
    let parsed
    try {
      parsed = parseArgs({ args: [...rest], options: { ...command.options, help: { type: 'boolean', short: 'h' } }, allowPositionals: true, strict: true })
    } catch (err) {
      throw new UsageError((err as Error).message, { cause: err })
    }
    if (parsed.values.help) {
      io.out(command.help)
      return EXIT.OK
    }
    return await command.run(parsed, io)
  } catch (err) {
    return reportError(command, err, io)
  }
}

function reportError(command: Command, err: unknown, io: CliIO): number {
  if (err instanceof UsageError) {
    io.err(`hostmesh ${command.name}: ${err.message}\n\n${command.help}`)
    return EXIT.USAGE
  }
  if (err instanceof ConfigError) {
    io.err(`hostmesh ${command.name}: ${err.message}\n`)
    return EXIT.CONFIG
  }
  if (err instanceof ListenerBindError || err instanceof AdminBindError) {
    io.err(`hostmesh ${command.name}: ${err.message} [${err.code}]\n`)
    return EXIT.BIND
  }
  if (err instanceof HostmeshError) {
    io.err(`hostmesh ${command.name}: ${err.message} [${err.code}]\n`)
    return EXIT.FAILURE
  }
  io.err(`hostmesh ${command.name}: unexpected error: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`)
  return EXIT.FAILURE
}
