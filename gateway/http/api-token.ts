/**
 * The bearer token of the gateway's HTTP API when the operator configures none: a random token in
 * `<stateDir>/api-token`, created once with mode 0600 and reused across restarts, so that the
 * API is never open by default and the investigator's CLI can be given the file (`--token-file`).
 */
import { randomBytes } from 'node:crypto'
import { open, readFile } from 'node:fs/promises'
import { GatewayError } from '../errors.js'
import type { Logger } from '../../common/logger.js'

/**
 * The token in `path`, created (32 random bytes, base64url, mode 0600) when the file does not exist.
 * @throws GatewayError `HTTP_TOKEN_UNUSABLE` (unreadable, or not a usable token).
 */
export async function loadOrCreateApiToken (path: string, minChars: number, logger: Logger): Promise<string> {
  try {
    // `wx`: two gateways racing on one folder cannot overwrite each other's token.
    const handle = await open(path, 'wx', 0o600)
    try {
      const token = randomBytes(32).toString('base64url')
      await handle.writeFile(token + '\n')
      await handle.sync()
      logger.info({ path }, 'created the HTTP API token file')
      return token
    } finally {
      await handle.close()
    }
  } catch (e) {
    if ((e as NodeJS.ErrnoException).code !== 'EEXIST') {
      throw new GatewayError('HTTP_TOKEN_UNUSABLE', `cannot create ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { cause: e })
    }
  }
  let text: string
  try {
    text = await readFile(path, 'utf8')
  } catch (e) {
    throw new GatewayError('HTTP_TOKEN_UNUSABLE', `cannot read ${path}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`, { cause: e })
  }
  const token = text.trim()
  // The message names the file, never its content.
  if (token.length < minChars || token.length > 4096 || !/^[\x21-\x7e]+$/.test(token)) {
    throw new GatewayError('HTTP_TOKEN_UNUSABLE', `${path} does not hold a token of ${minChars}..4096 printable characters`)
  }
  return token
}
