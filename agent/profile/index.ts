/**
 * Firmware profiles: the schema and its validator, and the resolver that finds a shipped profile
 * by name (or a file by path), merges a local override and validates the result.
 */
export { ProfileError, type ProfileErrorCode } from './errors.js'
export {
  assertProfile, listProfileFields, profileThreadOptions, PROFILE_SCHEMA, PROFILE_SCHEMA_VERSION, KNOWN_EXECUTION_PROVIDERS,
  INTRA_OP_ALL_BUT_ONE, type FirmwareProfile, type ProfileThreadOptions, type FieldSpec, type BudgetMode, type KeepUntil
} from './schema.js'
export { resolveProfile, mergeProfile, listProfiles, PROFILES_DIR, PROFILE_NAME_PATTERN, type ResolvedProfile } from './resolve.js'
