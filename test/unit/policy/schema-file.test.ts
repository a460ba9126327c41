import { readFileSync } from 'node:fs'
import t from 'tap'
import { renderSchema, SCHEMA_FILE } from '../../../scripts/gen-schema.ts'

t.test('the published JSON Schema is generated from the validator and up to date', async (t) => {
  t.equal(readFileSync(SCHEMA_FILE, 'utf8'), renderSchema(), 'run `npm run schema` after changing policy/schema/')
  const schema = JSON.parse(renderSchema()) as { oneOf: Array<{ properties: { kind: { const: string } }; additionalProperties: boolean }> }
  t.same(schema.oneOf.map((s) => s.properties.kind.const), ['Node', 'Workload', 'Service', 'HTTPRoute', 'TCPRoute', 'DestinationPolicy', 'AuthorizationPolicy'])
  t.ok(schema.oneOf.every((s) => s.additionalProperties === false), 'unknown keys are flagged in editors too')
})
