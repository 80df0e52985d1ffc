/**
 * Errors of firmware profiles: a profile that does not exist, cannot be read, or does not
 * validate. PROFILE_INVALID names every bad field (also in `fields`, for tools and tests).
 */
import { ProvenanceError } from '../../protocol/errors.js'

export type ProfileErrorCode =
  /** No profile of that name in firmware-profiles/, or no file at that path. */
  | 'PROFILE_NOT_FOUND'
  /** The file exists but cannot be read. */
  | 'PROFILE_UNREADABLE'
  /** Not JSON, or a field is missing, unknown or out of range (after the override is merged). */
  | 'PROFILE_INVALID'

export class ProfileError extends ProvenanceError<ProfileErrorCode> {
  /** Paths of the bad fields, e.g. `storage.budgetBytes` (PROFILE_INVALID only). */
  readonly fields: string[]

  constructor (code: ProfileErrorCode, message: string, options: { cause?: unknown, fields?: string[] } = {}) {
    super(code, message, options.cause !== undefined ? { cause: options.cause } : undefined)
    this.fields = options.fields ?? []
  }
}
