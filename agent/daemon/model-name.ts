/**
 * The form of a model's name (API paths, config, policy): apart from daemon.ts so the config schema
 * (loaded by --help) does not load the daemon.
 */
export const MODEL_NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$/
