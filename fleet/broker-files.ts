/**
 * Mosquitto 2.x access control for the fleet: one user per device (its id), the gateway's and the
 * policy publisher's users, written into a password file (mosquitto_passwd's PBKDF2-SHA512 `$7$`
 * format, made here with node:crypto) and an ACL file in blocks the CLI owns, so a device may
 * only publish its own records and status and read its own ack and policy.
 */
import { pbkdf2Sync, randomBytes, timingSafeEqual } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { writeFileAtomic } from '../common/index.js'
import { DEVICE_ID_PATTERN, LIMITS, TOPIC_ROOT } from '../protocol/index.js'
import { FleetError } from './errors.js'

/** What a broker user may do. */
export type BrokerRole = 'device' | 'gateway' | 'publisher'
export const BROKER_ROLES: readonly BrokerRole[] = ['device', 'gateway', 'publisher']

/** mosquitto_passwd's defaults (Mosquitto 2.0: PBKDF2-SHA512, 101 iterations, 12-byte salt, 64-byte hash). */
export const MOSQUITTO_PBKDF2_ITERATIONS = 101
const SALT_BYTES = 12
const HASH_BYTES = 64
const MAX_BROKER_FILE_BYTES = 16 * 1024 * 1024

/**
 * The ACL lines of one user. Topics are `prov/v1/<device>/<kind>` (docs/PROTOCOL.md, MQTT layout):
 * a device writes its records and its retained online/offline status (also its last will), and
 * reads its ack and its retained policy; the gateway reads every device's records and status and
 * writes (and reads back) acks; the publisher writes retained policies.
 */
export function aclLines (username: string, role: BrokerRole): string[] {
  assertBrokerUsername(username)
  const t = TOPIC_ROOT
  switch (role) {
    case 'device': return [`user ${username}`, `topic write ${t}/${username}/records`, `topic write ${t}/${username}/status`, `topic read ${t}/${username}/ack`, `topic read ${t}/${username}/policy`]
    case 'gateway': return [`user ${username}`, `topic read ${t}/+/records`, `topic read ${t}/+/status`, `topic readwrite ${t}/+/ack`]
    case 'publisher': return [`user ${username}`, `topic readwrite ${t}/+/policy`]
  }
}

/**
 * A password file line for `username`, as `mosquitto_passwd -b` writes it.
 * @throws FleetError `BROKER_USERNAME_INVALID`.
 */
export function hashMosquittoPassword (username: string, password: string, salt: Uint8Array = randomBytes(SALT_BYTES)): string {
  assertBrokerUsername(username)
  const hash = pbkdf2Sync(password, salt, MOSQUITTO_PBKDF2_ITERATIONS, HASH_BYTES, 'sha512')
  return `${username}:$7$${MOSQUITTO_PBKDF2_ITERATIONS}$${Buffer.from(salt).toString('base64')}$${hash.toString('base64')}`
}

/** True when `line` (a password file line) holds `password` for its user. */
export function checkMosquittoPassword (line: string, password: string): boolean {
  const m = /^[^:]+:\$7\$(\d+)\$([A-Za-z0-9+/=]+)\$([A-Za-z0-9+/=]+)$/.exec(line.trim())
  if (m === null) return false
  const expected = Buffer.from(m[3] as string, 'base64')
  const actual = pbkdf2Sync(password, Buffer.from(m[2] as string, 'base64'), Number(m[1]), expected.length, 'sha512')
  return expected.length === HASH_BYTES && timingSafeEqual(expected, actual)
}

/**
 * Refuses names Mosquitto's files cannot hold safely: ':' splits a password line, spaces and '#'
 * split or end an ACL line, '+', '#' and '/' would widen a topic. Device ids already exclude all
 * but ':'.
 * @throws FleetError `BROKER_USERNAME_INVALID`.
 */
export function assertBrokerUsername (username: string): void {
  if (typeof username !== 'string' || username.length > LIMITS.deviceIdChars || !DEVICE_ID_PATTERN.test(username) || username.includes(':')) {
    throw new FleetError('BROKER_USERNAME_INVALID', `"${String(username).slice(0, 140)}" cannot be a broker user: it must match ${DEVICE_ID_PATTERN.source} without ':' (at most ${LIMITS.deviceIdChars} characters)`)
  }
}

export interface BrokerUserChange {
  /** Path and whether the file changed (false in a dry run). */
  acl?: { path: string, lines: string[], written: boolean }
  passwd?: { path: string, written: boolean }
}

export interface UpsertBrokerUserOptions {
  username: string
  role: BrokerRole
  aclPath?: string
  passwdPath?: string
  /** Needed with `passwdPath`. */
  password?: string
  /** Compute, write nothing. */
  dryRun?: boolean
}

/**
 * Adds or replaces the user's block in the ACL file and its line in the password file; other
 * lines stay as they are. Files are replaced atomically and keep their mode (new ones: 0600).
 * @throws FleetError `BROKER_FILE_INVALID`, `BROKER_USERNAME_INVALID`, `FLEET_FILE_UNWRITABLE`.
 */
export async function upsertBrokerUser (o: UpsertBrokerUserOptions): Promise<BrokerUserChange> {
  assertBrokerUsername(o.username)
  const out: BrokerUserChange = {}
  if (o.aclPath !== undefined) {
    const lines = aclLines(o.username, o.role)
    const current = await readBrokerFile(o.aclPath)
    const kept = removeAclBlock(current?.text ?? '', o.username, o.aclPath)
    const text = (kept === '' || kept.endsWith('\n') ? kept : kept + '\n') + (kept.trim() === '' ? '' : '\n') + blockOf(o.username, lines)
    if (o.dryRun !== true) await writeBrokerFile(o.aclPath, text, current?.mode)
    out.acl = { path: o.aclPath, lines, written: o.dryRun !== true }
  }
  if (o.passwdPath !== undefined) {
    if (o.password === undefined) throw new TypeError('password is needed with passwdPath')
    const current = await readBrokerFile(o.passwdPath)
    const kept = passwdLinesWithout(current?.text ?? '', o.username, o.passwdPath)
    const text = [...kept, hashMosquittoPassword(o.username, o.password)].join('\n') + '\n'
    if (o.dryRun !== true) await writeBrokerFile(o.passwdPath, text, current?.mode)
    out.passwd = { path: o.passwdPath, written: o.dryRun !== true }
  }
  return out
}

/**
 * Removes the user's ACL block and password line (a revoked device can no longer connect).
 * @returns whether anything was found to remove.
 */
export async function removeBrokerUser (o: { username: string, aclPath?: string, passwdPath?: string, dryRun?: boolean }): Promise<{ acl: boolean, passwd: boolean }> {
  assertBrokerUsername(o.username)
  const result = { acl: false, passwd: false }
  if (o.aclPath !== undefined) {
    const current = await readBrokerFile(o.aclPath)
    if (current !== undefined) {
      const kept = removeAclBlock(current.text, o.username, o.aclPath)
      result.acl = kept !== current.text
      if (result.acl && o.dryRun !== true) await writeBrokerFile(o.aclPath, kept, current.mode)
    }
  }
  if (o.passwdPath !== undefined) {
    const current = await readBrokerFile(o.passwdPath)
    if (current !== undefined) {
      const kept = passwdLinesWithout(current.text, o.username, o.passwdPath)
      result.passwd = kept.length !== current.text.split('\n').filter(l => l.trim() !== '').length
      if (result.passwd && o.dryRun !== true) await writeBrokerFile(o.passwdPath, kept.length > 0 ? kept.join('\n') + '\n' : '', current.mode)
    }
  }
  return result
}

const BEGIN = '# provenance-fleet begin '
const END = '# provenance-fleet end '

function blockOf (username: string, lines: string[]): string {
  return [`${BEGIN}${username}`, ...lines, `${END}${username}`].join('\n') + '\n'
}

/** The ACL text without the user's block; a `user <name>` line of that user outside a block is refused. */
function removeAclBlock (text: string, username: string, path: string): string {
  const out: string[] = []
  let inside: string | undefined
  for (const line of text.split('\n')) {
    const trimmed = line.trim()
    if (trimmed.startsWith(BEGIN)) {
      if (inside !== undefined) throw new FleetError('BROKER_FILE_INVALID', `${path}: block "${inside}" is not closed before "${trimmed}"`)
      inside = trimmed.slice(BEGIN.length)
      if (inside === username) continue
    } else if (trimmed.startsWith(END)) {
      const name = trimmed.slice(END.length)
      if (name !== inside) throw new FleetError('BROKER_FILE_INVALID', `${path}: "${trimmed}" closes no open block`)
      inside = undefined
      if (name === username) continue
    } else if (inside === username) {
      continue
    } else if (inside === undefined && /^user\s+/.test(trimmed) && trimmed.replace(/^user\s+/, '') === username) {
      // A hand-written section for the same user would merge with ours in Mosquitto: the
      // operator must decide which one holds.
      throw new FleetError('BROKER_FILE_INVALID', `${path}: user ${username} has a hand-written section; remove it or let provenance-fleet own it`)
    }
    out.push(line)
  }
  if (inside !== undefined) throw new FleetError('BROKER_FILE_INVALID', `${path}: block "${inside}" is not closed`)
  return out.join('\n')
}

function passwdLinesWithout (text: string, username: string, path: string): string[] {
  const kept: string[] = []
  for (const [i, line] of text.split('\n').entries()) {
    if (line.trim() === '') continue
    const colon = line.indexOf(':')
    if (colon <= 0) throw new FleetError('BROKER_FILE_INVALID', `${path}:${i + 1}: not a "user:hash" line`)
    if (line.slice(0, colon) !== username) kept.push(line)
  }
  return kept
}

async function readBrokerFile (path: string): Promise<{ text: string, mode: number } | undefined> {
  try {
    const stat = await fs.stat(path)
    if (!stat.isFile() || stat.size > MAX_BROKER_FILE_BYTES) throw new FleetError('BROKER_FILE_INVALID', `${path} is not a broker file (not a regular file, or over 16 MiB)`)
    return { text: await fs.readFile(path, 'utf8'), mode: stat.mode & 0o777 }
  } catch (e) {
    if (e instanceof FleetError) throw e
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') return undefined
    throw new FleetError('FLEET_FILE_UNWRITABLE', `cannot read ${path}: ${(e as Error).message}`, { cause: e })
  }
}

async function writeBrokerFile (path: string, text: string, mode: number | undefined): Promise<void> {
  try {
    await writeFileAtomic(path, text, { mode: mode ?? 0o600, dirMode: 0o755 })
  } catch (e) {
    throw new FleetError('FLEET_FILE_UNWRITABLE', `cannot write ${path}: ${(e as Error).message}`, { cause: e })
  }
}
