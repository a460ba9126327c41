import type { ParseArgsConfig } from 'node:util'

/** Everything a command may touch of the outside world, so tests can run commands in-process. */
export interface CliIO {
  readonly out: (text: string) => void
  readonly err: (text: string) => void
  readonly env: NodeJS.ProcessEnv
}

export type OptionSpec = NonNullable<ParseArgsConfig['options']>

export interface ParsedArgs {
  readonly values: Readonly<Record<string, string | boolean | (string | boolean)[] | undefined>>
  readonly positionals: readonly string[]
}

export interface Command {
  readonly name: string
  /** One line, for the command list. */
  readonly summary: string
  /** The full `--help` text. */
  readonly help: string
  readonly options: OptionSpec
  run(args: ParsedArgs, io: CliIO): Promise<number>
}

export function stringOption(args: ParsedArgs, name: string): string | undefined {
  const v = args.values[name]
  return typeof v === 'string' ? v : undefined
}
