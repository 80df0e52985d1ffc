/**
 * `provenance-agent capture freeze|list`: incident captures through the running daemon's API.
 */
import { resolve } from 'node:path'
import { integerOption, type OptionValues } from './options.js'
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
