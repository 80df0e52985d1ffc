/**
 * `provenance-agent oversight` and `session start|end`: records a person or the application states
 * at this device (a review of a decision; the start or end of a use), appended by the running
 * daemon through its API so they are signed, chained and uplinked like every record.
 */
import { createHash } from 'node:crypto'
import { createReadStream } from 'node:fs'
import { basename, resolve } from 'node:path'
import { integerOption, type OptionValues } from './args.js'
import { prepare, printResult, type CliIo } from './context.js'
import { findDaemon, parseDaemonJson, requestDaemon, DEFAULT_DAEMON_TIMEOUT_MS, type DaemonEndpoint } from './daemon-client.js'
import { CliError } from './errors.js'

interface Written { record: { kind: string, seq: number, boot: number, timeMs: number, hash: string } }

async function daemonEndpoint (values: OptionValues, io: CliIo): Promise<DaemonEndpoint> {
  const override = values.port !== undefined ? integerOption(values, 'port', 0, 65535) : undefined
  return await findDaemon(await prepare(values, io), override)
}

function required (values: OptionValues, name: string): string {
  const v = values[name]
  if (typeof v !== 'string' || v === '') throw new CliError('USAGE', `--${name} is required`)
  return v
}

export async function runOversight (values: OptionValues, io: CliIo): Promise<number> {
  const decisionHash = required(values, 'decision')
  if (!/^[0-9a-fA-F]{64}$/.test(decisionHash)) throw new CliError('USAGE', '--decision must be the decision record\'s hash: 64 hex digits')
  const verdict = required(values, 'verdict')
  if (!['confirmed', 'overridden', 'escalated'].includes(verdict)) throw new CliError('USAGE', '--verdict must be confirmed, overridden or escalated')
  const body = {
    kind: 'oversight',
    reviewer: required(values, 'reviewer'),
    decisionDeviceId: required(values, 'decision-device'),
    decisionSeq: integerOption(values, 'decision-seq', -1),
    decisionHash: decisionHash.toLowerCase(),
    verdict,
    reason: typeof values.reason === 'string' ? values.reason : ''
  }
  if (body.decisionSeq < 0) throw new CliError('USAGE', '--decision-seq is required')
  return await write(values, io, body, w => `oversight record seq ${w.seq} (${w.hash}): ${verdict} decision seq ${body.decisionSeq} of ${body.decisionDeviceId}`)
}

export async function runSessionStart (values: OptionValues, io: CliIo): Promise<number> {
  return await runSession(values, io, 'start')
}

export async function runSessionEnd (values: OptionValues, io: CliIo): Promise<number> {
  return await runSession(values, io, 'end')
}

async function runSession (values: OptionValues, io: CliIo, phase: 'start' | 'end'): Promise<number> {
  const sessionId = required(values, 'id')
  const file = typeof values.reference === 'string' ? resolve(values.reference) : undefined
  const referenceHash = file === undefined ? null : await hashFile(file)
  const referenceName = typeof values['reference-name'] === 'string' ? values['reference-name'] : file === undefined ? '' : basename(file)
  const body = { kind: 'session', phase, sessionId, referenceName, referenceHash }
  return await write(values, io, body, w => `session ${sessionId} ${phase}: record seq ${w.seq} (${w.hash}), reference ${referenceHash === null ? 'none' : `${referenceName} sha256 ${referenceHash}`}`)
}

async function write (values: OptionValues, io: CliIo, body: Record<string, unknown>, line: (w: Written['record']) => string): Promise<number> {
  const daemon = await daemonEndpoint(values, io)
  const written = parseDaemonJson(await requestDaemon(daemon, 'POST', '/v1/records', DEFAULT_DAEMON_TIMEOUT_MS, body)) as Written
  printResult(io, values.json === true, written, () => [line(written.record)])
  return 0
}

/** SHA-256 of a file, streamed: a reference database may be large. */
async function hashFile (path: string): Promise<string> {
  const hash = createHash('sha256')
  try {
    for await (const chunk of createReadStream(path)) hash.update(chunk as Buffer)
  } catch (e) {
    throw new CliError('USAGE', `--reference ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { cause: e })
  }
  return hash.digest('hex')
}
