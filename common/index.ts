/**
 * Shared infrastructure for the services and CLIs (agent, gateway, forensics, fleet): what every
 * part needs but protocol/ must not do, because it does I/O. Imports protocol/ only.
 */
export { CommonError, UsageError, type CommonErrorCode } from './errors.js'
export { writeFileAtomic, syncDir, type WriteFileAtomicOptions } from './atomic-file.js'
export { readSecret, parseHexSecret32, MAX_SECRET_FILE_BYTES, type ReadSecretOptions } from './secret-file.js'
export * from './cli/index.js'
