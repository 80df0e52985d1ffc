/**
 * Where `provenance` writes and what it reads from its environment: the process's streams, or a
 * test's captured ones.
 */
import type { ProgressStream } from './progress.js'

/** Environment variable read for the JSON-RPC URL when --rpc-url is not given. */
export const RPC_URL_ENV = 'PROVENANCE_RPC_URL'
/** Environment variable read for the gateway's API token when --token-file is not given (export only). */
export const GATEWAY_TOKEN_ENV = 'PROVENANCE_GATEWAY_TOKEN'

export interface CliIo {
  stdout: (text: string) => void
  /** Progress draws a bar when this is a terminal (`isTTY`). */
  stderr: ProgressStream
  env: Record<string, string | undefined>
}

export const defaultIo: CliIo = {
  stdout: text => { process.stdout.write(text) },
  stderr: process.stderr,
  env: process.env
}
