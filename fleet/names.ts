/**
 * Names the fleet CLI shows in its help and checks before doing anything: environment variables
 * and role names. Kept apart from the chain and broker code, which load ethers and mqtt, so that
 * --help, --version and usage errors start without them.
 */

/** Environment variable holding the operator's private key (0x-hex), read only by this CLI. */
export const FLEET_KEY_ENV = 'PROVENANCE_FLEET_KEY'
/** Environment variable holding the publisher's Ed25519 seed (64 hex digits), read only by this CLI. */
export const POLICY_KEY_ENV = 'PROVENANCE_POLICY_KEY'
/** Environment variable holding the MQTT password of `policy publish`. */
export const MQTT_PASSWORD_ENV = 'PROVENANCE_MQTT_PASSWORD'

/** CLI names of the registry roles (`--role`) and the contracts part's names for them. */
export const ROLE_OPTION_NAMES = { admin: 'admin', 'device-registrar': 'deviceRegistrar', 'model-publisher': 'modelPublisher', anchorer: 'anchorer' } as const
export type RoleOptionName = keyof typeof ROLE_OPTION_NAMES
