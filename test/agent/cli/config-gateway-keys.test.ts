// The agent's gatewayPublicKeys setting (docs/OPERATIONS.md §Signed acks): a list from the file,
// a JSON array or a comma-separated list from the environment, each key 64 hex digits.
import t from 'tap'
import { ConfigError } from '../../../common/index.js'
import { loadConfig } from '../../../agent/cli/config.js'

const KEY_A = 'ab'.repeat(32)
const KEY_B = 'CD'.repeat(32)
const env = (extra: Record<string, string>): Record<string, string> => ({
  PROVENANCE_AGENT_DEVICE_ID: 'dev-1', PROVENANCE_AGENT_STATE_DIR: '/tmp/x', PROVENANCE_AGENT_PROFILE: 'generic-x86_64', ...extra
})

t.test('behavior: gateway keys from the environment, comma-separated or JSON', async t => {
  const a = await loadConfig({ env: env({ PROVENANCE_AGENT_GATEWAY_PUBLIC_KEYS: ` ${KEY_A}, ${KEY_B} ` }) })
  t.same(a.config.gatewayPublicKeys, [KEY_A, KEY_B])
  const b = await loadConfig({ env: env({ PROVENANCE_AGENT_GATEWAY_PUBLIC_KEYS: JSON.stringify([KEY_A]) }) })
  t.same(b.config.gatewayPublicKeys, [KEY_A])
  const none = await loadConfig({ env: env({}) })
  t.equal(none.config.gatewayPublicKeys, undefined, 'unset: keep-all')
})

t.test('error: a gateway key that is not 64 hex digits, or an empty list, is CONFIG_INVALID', async t => {
  for (const bad of ['abc', `${KEY_A},xyz`, '[]', '[1]', '[not json']) {
    const err = await loadConfig({ env: env({ PROVENANCE_AGENT_GATEWAY_PUBLIC_KEYS: bad }) }).then(() => undefined, (e: unknown) => e)
    t.type(err, ConfigError, bad)
    t.equal((err as ConfigError).code, 'CONFIG_INVALID', bad)
    t.match((err as Error).message, /gatewayPublicKeys|GATEWAY_PUBLIC_KEYS/, bad)
  }
})
