// The agent's and the gateway's configuration tables in docs/OPERATIONS.md are generated from their
// config schemas: a field added to a schema (type, check, variable, meaning in one place) reaches the docs and --help.
import t from 'tap'
import { readFile } from 'node:fs/promises'
import { OPERATIONS_DOC, withConfigTable } from '../../scripts/gen-config-doc.js'
import { AGENT_CONFIG_SCHEMA, CONFIG_FIELDS } from '../../agent/cli/config-fields.js'
import { GATEWAY_CONFIG_FIELDS, GATEWAY_CONFIG_SCHEMA } from '../../gateway/config-schema.js'
import { resolveGatewayOptions } from '../../gateway/options.js'

t.test('behavior: docs/OPERATIONS.md holds the tables the agent and gateway config schemas generate', async t => {
  const doc = await readFile(OPERATIONS_DOC, 'utf8')
  t.equal(doc, withConfigTable(doc), 'current (node --import tsx scripts/gen-config-doc.ts)')
})

t.test('behavior: every schema field has its PROVENANCE_AGENT_* variable and a meaning', async t => {
  t.same(Object.keys(CONFIG_FIELDS), Object.keys(AGENT_CONFIG_SCHEMA.shape))
  for (const [name, f] of Object.entries(CONFIG_FIELDS)) {
    t.match(f, { env: /^PROVENANCE_AGENT_[A-Z_]+$/, doc: /\S/ }, name)
    t.equal(f.env, `PROVENANCE_AGENT_${name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`, `${name}: its variable is its name in UPPER_SNAKE_CASE`)
  }
})

t.test('behavior: every gateway schema field has its PROVENANCE_GATEWAY_* variable, a kind and a meaning', async t => {
  t.same(Object.keys(GATEWAY_CONFIG_FIELDS), Object.keys(GATEWAY_CONFIG_SCHEMA.shape))
  for (const [name, f] of Object.entries(GATEWAY_CONFIG_FIELDS)) {
    t.match(f, { kind: /^(string|int|bool|list)$/, doc: /\S/ }, name)
    t.equal(f.env, `PROVENANCE_GATEWAY_${name.replace(/([a-z])([A-Z])/g, '$1_$2').toUpperCase()}`, `${name}: its variable is its name in UPPER_SNAKE_CASE`)
  }
})

t.test('behavior: the ranges the gateway table shows are the ones resolveGatewayOptions enforces', async t => {
  const base = { name: 'gw', stateDir: '/tmp/unused', rpcUrl: 'http://127.0.0.1:1', registry: '0x01' }
  t.ok(resolveGatewayOptions(base), 'the defaults are in range')
  for (const [name, f] of Object.entries(GATEWAY_CONFIG_FIELDS)) {
    if (f.min === undefined) continue
    const outside = [f.min - 1, ...(f.max === undefined || f.max === Number.MAX_SAFE_INTEGER ? [] : [f.max + 1])]
    for (const v of outside) t.throws(() => resolveGatewayOptions({ ...base, [name]: v }), new RangeError(`${name} must be an integer in ${f.min}..${f.max ?? ''}`), `${name}: ${v} refused`)
    t.doesNotThrow(() => resolveGatewayOptions({ ...base, [name]: f.min }), `${name}: ${f.min} accepted`)
  }
})
