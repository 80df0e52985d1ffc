/**
 * Finds a firmware profile by name (a file of firmware-profiles/) or path, merges a device's
 * local override file into it (deep merge of objects; arrays and values replace), and validates
 * the result, so a bad override is named as clearly as a bad profile.
 */
import { createHash } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { basename, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { ProfileError } from './errors.js'
import { assertProfile, type FirmwareProfile } from './schema.js'

/** The folder of the shipped profiles. */
export const PROFILES_DIR = fileURLToPath(new URL('../../firmware-profiles/', import.meta.url))
/** Names refer to shipped profiles; anything with a slash or a `.json` ending is a path. */
export const PROFILE_NAME_PATTERN = /^[a-z0-9][a-z0-9._-]*$/
const MAX_PROFILE_BYTES = 64 * 1024

export interface ResolvedProfile {
  profile: FirmwareProfile
  /** The file the profile came from. */
  source: string
  /** The override file merged into it, if any. */
  overrideSource?: string
  /**
   * What boot records carry: `<name>@<8 hex>`, or `<name>+override@<8 hex>`, the hex being the
   * start of the SHA-256 of the effective profile, so an investigator can tell the settings apart.
   */
  id: string
}

/** Names of the shipped profiles, sorted. */
export async function listProfiles (dir: string = PROFILES_DIR): Promise<string[]> {
  const entries = await fs.readdir(dir).catch(() => [] as string[])
  return entries.filter(e => e.endsWith('.json')).map(e => e.slice(0, -'.json'.length)).filter(n => PROFILE_NAME_PATTERN.test(n)).sort()
}

/**
 * The profile `nameOrPath` with `overridePath` merged in, validated.
 * @throws ProfileError `PROFILE_NOT_FOUND`, `PROFILE_UNREADABLE`, `PROFILE_INVALID`.
 */
export async function resolveProfile (nameOrPath: string, overridePath?: string, options: { dir?: string } = {}): Promise<ResolvedProfile> {
  const dir = options.dir ?? PROFILES_DIR
  const isPath = nameOrPath.includes('/') || nameOrPath.endsWith('.json')
  if (!isPath && !PROFILE_NAME_PATTERN.test(nameOrPath)) {
    throw new ProfileError('PROFILE_NOT_FOUND', `"${nameOrPath}" is not a profile name; shipped profiles: ${(await listProfiles(dir)).join(', ')}`)
  }
  const source = isPath ? resolve(nameOrPath) : resolve(dir, `${nameOrPath}.json`)
  const base = await readJsonFile(source, isPath ? undefined : async () => `no profile "${nameOrPath}"; shipped profiles: ${(await listProfiles(dir)).join(', ')}`)
  let merged = base
  let overrideSource: string | undefined
  if (overridePath !== undefined) {
    overrideSource = resolve(overridePath)
    const override = await readJsonFile(overrideSource)
    if (typeof override !== 'object' || override === null || Array.isArray(override)) {
      throw new ProfileError('PROFILE_INVALID', `override ${overrideSource}: must be a JSON object`, { fields: ['(root)'] })
    }
    merged = mergeProfile(base, override)
  }
  const label = overrideSource === undefined ? `profile ${source}` : `profile ${source} with override ${overrideSource}`
  assertProfile(merged, label)
  if (!isPath && merged.name !== nameOrPath) {
    throw new ProfileError('PROFILE_INVALID', `${label}: name: must be "${nameOrPath}", the file's name`, { fields: ['name'] })
  }
  const digest = createHash('sha256').update(stableStringify(merged)).digest('hex').slice(0, 8)
  return {
    profile: merged,
    source,
    ...(overrideSource !== undefined ? { overrideSource } : {}),
    id: `${merged.name}${overrideSource !== undefined ? '+override' : ''}@${digest}`
  }
}

/** Deep merge: objects merge key by key; arrays, scalars and null replace. Inputs are not modified. */
export function mergeProfile (base: unknown, override: unknown): unknown {
  if (!isPlainObject(base) || !isPlainObject(override)) return structuredClone(override)
  const out: Record<string, unknown> = structuredClone(base)
  for (const [key, value] of Object.entries(override)) {
    // JSON.parse makes "__proto__" an own key: never let it reach an object's prototype.
    if (key === '__proto__' || key === 'constructor' || key === 'prototype') {
      Object.defineProperty(out, key, { value, enumerable: true, writable: true, configurable: true })
      continue
    }
    out[key] = Object.hasOwn(out, key) ? mergeProfile(out[key], value) : structuredClone(value)
  }
  return out
}

async function readJsonFile (path: string, notFound?: () => Promise<string>): Promise<unknown> {
  let text: string
  try {
    const handle = await fs.open(path, 'r')
    try {
      const stat = await handle.stat()
      if (!stat.isFile()) throw new ProfileError('PROFILE_UNREADABLE', `profile ${path} is not a regular file`)
      if (stat.size > MAX_PROFILE_BYTES) throw new ProfileError('PROFILE_INVALID', `profile ${path} is ${stat.size} bytes, more than ${MAX_PROFILE_BYTES}`, { fields: ['(root)'] })
      text = await handle.readFile('utf8')
    } finally {
      await handle.close()
    }
  } catch (e) {
    if (e instanceof ProfileError) throw e
    if ((e as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new ProfileError('PROFILE_NOT_FOUND', notFound !== undefined ? await notFound() : `no profile file ${path}`, { cause: e })
    }
    throw new ProfileError('PROFILE_UNREADABLE', `cannot read profile ${path}: ${(e as Error).message}`, { cause: e })
  }
  try {
    return JSON.parse(text)
  } catch (cause) {
    throw new ProfileError('PROFILE_INVALID', `${basename(path)} (${path}) is not JSON: ${(cause as Error).message}`, { cause, fields: ['(root)'] })
  }
}

function isPlainObject (v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function stableStringify (v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(stableStringify).join(',')}]`
  if (isPlainObject(v)) return `{${Object.keys(v).sort().map(k => `${JSON.stringify(k)}:${stableStringify(v[k])}`).join(',')}}`
  return JSON.stringify(v)
}
