/**
 * Option specs the fleet commands share, so each name, placeholder and environment variable is
 * written once.
 */
import { UsageError, type CliContext, type CliOptionSpec } from '../common/index.js'
import { FLEET_KEY_ENV } from './names.js'

export const RPC_URL: CliOptionSpec = { name: 'rpc-url', type: 'string', value: '<url>', env: 'PROVENANCE_RPC_URL', description: 'JSON-RPC endpoint of the chain.' }
export const REGISTRY: CliOptionSpec = { name: 'registry', type: 'string', value: '<address>', env: 'PROVENANCE_REGISTRY', description: 'Address of the ProvenanceRegistry.' }
export const KEY_FILE: CliOptionSpec = {
  name: 'key-file',
  type: 'string',
  value: '<path>',
  env: 'PROVENANCE_FLEET_KEY_FILE',
  description: `File (mode 0600) holding the operator's private key (0x-hex); without it the key comes from $${FLEET_KEY_ENV}.`
}
export const CHAIN_READ: readonly CliOptionSpec[] = [RPC_URL, REGISTRY]
export const CHAIN_WRITE: readonly CliOptionSpec[] = [RPC_URL, REGISTRY, KEY_FILE]

export const MOSQUITTO_ACL: CliOptionSpec = { name: 'mosquitto-acl', type: 'string', value: '<path>', description: 'Mosquitto ACL file to add the user\'s block to (created when missing; other lines are kept).' }
export const MOSQUITTO_PASSWD: CliOptionSpec = { name: 'mosquitto-passwd', type: 'string', value: '<path>', description: 'Mosquitto password file to add the user\'s PBKDF2-SHA512 line to (as mosquitto_passwd writes it).' }
export const MQTT_PASSWORD_FILE: CliOptionSpec = {
  name: 'mqtt-password-file',
  type: 'string',
  value: '<path>',
  description: 'The user\'s MQTT password (mode 0600). With --mosquitto-passwd: read when it exists, else a random password is generated into it (hand it to the device or gateway as its brokerPassword).'
}
export const BROKER_FILES: readonly CliOptionSpec[] = [MOSQUITTO_ACL, MOSQUITTO_PASSWD, MQTT_PASSWORD_FILE]

/** --rpc-url, checked. @throws UsageError */
export function rpcUrlOf (ctx: CliContext): string {
  const url = ctx.required('rpc-url')
  if (!/^https?:\/\/[^\s]+$/.test(url)) throw new UsageError('--rpc-url must be an http(s) URL')
  return url
}

/** A bytes32 option as 0x-hex (lower case). @throws UsageError */
export function hex32 (value: string, what: string): string {
  const hex = value.replace(/^0x/i, '')
  if (!/^[0-9a-fA-F]{64}$/.test(hex)) throw new UsageError(`${what} must be 32 bytes written as 64 hex digits`)
  return '0x' + hex.toLowerCase()
}

/** A 20-byte address option, shape only (the checksum is checked once ethers is loaded). @throws UsageError */
export function addressShape (value: string, what: string): string {
  if (!/^0x[0-9a-fA-F]{40}$/.test(value)) throw new UsageError(`${what} must be a 20-byte 0x-hex address`)
  return value
}
