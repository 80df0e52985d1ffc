/**
 * `provenance-agent capture freeze|list`: incident captures through the running daemon's API.
 */
import { resolve } from 'node:path'
import { integerOption, type OptionValues } from './args.js'
import { prepare, printResult, type CliIo } from './context.js'
import { findDaemon, parseDaemonJson, requestDaemon, type DaemonEndpoint } from './daemon-client.js'
import { CliError } from './errors.js'
import { writeFileAtomic } from '../keys/index.js'

interface CaptureInfo { name: string, path: string, sizeBytes: number, frozenAtMs: number, entries?: number }

async function daemonEndpoint (values: OptionValues, io: CliIo): Promise<DaemonEndpoint> {
  const override = values.port !== undefined ? integerOption(values, 'port', 0, 65535) : undefined
  return await findDaemon(await prepare(values, io), override)
}

export async function runCaptureFreeze (values: OptionValues, io: CliIo): Promise<number> {
  const daemon = await daemonEndpoint(values, io)
  const reason = typeof values.reason === 'string' ? values.reason : 'request'
  const frozen = parseDaemonJson(await requestDaemon(daemon, 'POST', `/v1/captures?reason=${encodeURIComponent(reason)}`)) as CaptureInfo
  let out: string | undefined
  if (typeof values.out === 'string') {
    const res = await requestDaemon(daemon, 'GET', `/v1/captures/${encodeURIComponent(frozen.name)}`)
    if (res.status !== 200) parseDaemonJson(res)
    out = resolve(values.out)
    try {
      await writeFileAtomic(out, res.body, { mode: 0o600 })
    } catch (e) {
      throw new CliError('EXPORT_FAILED', `cannot write ${out}: ${(e as Error).message}`, { cause: e })
    }
  }
  printResult(io, values.json === true, { ...frozen, ...(out !== undefined ? { out } : {}) }, () => [
    `capture ${frozen.name}: ${frozen.entries ?? 0} runs, ${frozen.sizeBytes} bytes, on the device at ${frozen.path}`,
    ...(out !== undefined ? [`written to ${out} (incident material: raw inputs and salts)`] : [])
  ])
  return 0
}

export async function runCaptureList (values: OptionValues, io: CliIo): Promise<number> {
  const daemon = await daemonEndpoint(values, io)
  const { captures } = parseDaemonJson(await requestDaemon(daemon, 'GET', '/v1/captures')) as { captures: CaptureInfo[] }
  printResult(io, values.json === true, { captures }, () => captures.length === 0
    ? ['no frozen captures']
    : captures.map(c => `${c.name}  ${c.sizeBytes} bytes  frozen ${new Date(c.frozenAtMs).toISOString()}`))
  return 0
}

interface ShredInfo { statement: string, hash: string, ranges: Array<{ firstSeq: number, lastSeq: number }>, path: string, capturesDropped: number }

/** `provenance-agent shred`: crypto-shredding of one data subject through the running daemon. */
export async function runShred (values: OptionValues, io: CliIo): Promise<number> {
  const daemon = await daemonEndpoint(values, io)
  const subject = values.subject
  if (typeof subject !== 'string' || subject === '') throw new CliError('USAGE', 'shred needs --subject <id>')
  const reason = typeof values.reason === 'string' ? values.reason : 'erasure request'
  const shredded = parseDaemonJson(await requestDaemon(daemon, 'POST', '/v1/subjects/shred', undefined, { subject, reason })) as ShredInfo
  let out: string | undefined
  if (typeof values.out === 'string') {
    out = resolve(values.out)
    try {
      await writeFileAtomic(out, Buffer.from(shredded.statement, 'base64'), { mode: 0o644 })
    } catch (e) {
      throw new CliError('EXPORT_FAILED', `cannot write ${out}: ${(e as Error).message}`, { cause: e })
    }
  }
  printResult(io, values.json === true, { ...shredded, ...(out !== undefined ? { out } : {}) }, () => [
    `subject key destroyed: seq ${shredded.ranges.map(r => r.firstSeq === r.lastSeq ? String(r.firstSeq) : `${r.firstSeq}..${r.lastSeq}`).join(', ')} can no longer be opened (${shredded.capturesDropped} captured run(s) dropped)`,
    `shredding statement ${shredded.hash} at ${shredded.path}${out !== undefined ? ` and ${out}` : ''}: give it to investigators (provenance export --shredding <file>)`
  ])
  return 0
}
