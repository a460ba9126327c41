import { HostmeshError } from '../base/errors.ts'

/** One problem in a source file, located so an editor can jump to it. */
export interface SourceProblem {
  readonly file: string
  /** 1-based */
  readonly line: number
  /** 1-based */
  readonly col: number
  /** Dotted key path such as `ports.admin`, or '' for the document itself. */
  readonly key: string
  readonly message: string
}

export function formatProblem(p: SourceProblem): string {
  return `${p.file}:${p.line}:${p.col}: ${p.message}`
}

/** A file could not be read at all (missing, unreadable, too large). */
export class SourceReadError extends HostmeshError {
  readonly file: string
  constructor(file: string, message: string, options?: { cause?: unknown }) {
    super('HOSTMESH_ERR_SOURCE_READ', `${file}: ${message}`, options)
    this.file = file
  }
}
