// `npm run schema`: writes policy/hostmesh-policy.schema.json from the validator's own zod
// schemas, so editors (yaml-language-server) complete and check exactly what the daemon
// accepts. A test fails if the committed file is stale.
import { writeFileSync } from 'node:fs'
import { policyJsonSchema } from '../policy/schema/documents.ts'

export const SCHEMA_FILE = new URL('../policy/hostmesh-policy.schema.json', import.meta.url)

export function renderSchema(): string {
  return `${JSON.stringify(policyJsonSchema(), null, 2)}\n`
}

if (import.meta.url === `file://${process.argv[1]}`) {
  writeFileSync(SCHEMA_FILE, renderSchema())
  process.stdout.write(`wrote ${SCHEMA_FILE.pathname}\n`)
}
