// hostmesh.yaml → a validated, deep-frozen NodeConfig, or a ConfigError naming every
// problem by file:line:col and key. Runs once, at start; nothing here is on a hot path.
import { deepFreeze } from '../../policy/freeze.ts'
import { SourceReadError } from '../../policy/errors.ts'
import { schemaProblems } from '../../policy/schema-problems.ts'
import { parseSource, readSource, DEFAULT_LIMITS } from '../../policy/source.ts'
import { ConfigError } from './errors.ts'
import { DEFAULT_CONFIG_PATH, NodeConfigSchema, type NodeConfig } from './schema.ts'

/** `--config` wins, then HOSTMESH_CONFIG, then the default path. */
export function resolveConfigPath(flag: string | undefined, env: NodeJS.ProcessEnv = process.env): string {
  return flag || env.HOSTMESH_CONFIG || DEFAULT_CONFIG_PATH
}

export async function loadNodeConfig(file: string): Promise<NodeConfig> {
  let text: string
  try {
    text = await readSource(file, { ...DEFAULT_LIMITS, maxBytes: 64 * 1024 })
  } catch (err) {
    const why = err instanceof SourceReadError ? err.message : String(err)
    throw new ConfigError(file, [], { cause: err, summary: `cannot read node config ${why}` })
  }
  return parseNodeConfig(file, text)
}

export function parseNodeConfig(file: string, text: string): NodeConfig {
  const { docs, problems } = parseSource(file, text)
  if (problems.length > 0) throw new ConfigError(file, problems)
  if (docs.length !== 1) {
    throw new ConfigError(file, [{ file, line: 1, col: 1, key: '', message: docs.length === 0 ? 'the file holds no YAML document; expected a mapping with at least node.name and node.addresses' : `expected exactly one YAML document, found ${docs.length}` }])
  }
  const src = docs[0]!
  const result = NodeConfigSchema.safeParse(src.value ?? {})
  if (!result.success) throw new ConfigError(file, schemaProblems(src, NodeConfigSchema, result.error.issues))
  return deepFreeze(result.data)
}
