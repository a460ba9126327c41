import { HostmeshError } from '../../base/errors.ts'
import { formatProblem, type SourceProblem } from '../../policy/errors.ts'

/**
 * The node config cannot be used. `problems` lists every located problem (file:line:col,
 * key, message); for a file that could not be read it is empty and `cause` says why.
 */
export class ConfigError extends HostmeshError {
  readonly file: string
  readonly problems: readonly SourceProblem[]

  constructor(file: string, problems: readonly SourceProblem[], options?: { cause?: unknown; summary?: string }) {
    const head = options?.summary ?? `invalid node config ${file}`
    super('HOSTMESH_ERR_CONFIG', [head, ...problems.map(formatProblem)].join('\n'), options)
    this.file = file
    this.problems = Object.freeze([...problems])
  }
}
