/**
 * `provenance-agent capture sample`: keeps a sample for training through the running daemon (a
 * data-capture record, docs/LINEAGE.md §5) and prints the receipt, with the captures-file entry.
 */
import { open } from 'node:fs/promises'
import { basename, resolve } from 'node:path'
import { UsageError } from '../../common/index.js'
import { integerOption, type OptionValues } from './options.js'
import { prepare, printResult, type CliIo } from './context.js'
import { findDaemon, parseDaemonJson, requestDaemon, DEFAULT_DAEMON_TIMEOUT_MS } from './daemon-client.js'

/** Largest sample read: bounded before allocating (the daemon's own limit is usually lower). */
export const MAX_SAMPLE_BYTES = 256 * 1024 * 1024
/** As the record's limits (docs/PROTOCOL.md §2): checked here so the mistake is a usage error. */
const MAX_TEXT_BYTES = 256

interface Receipt {
  record: { deviceId: string, seq: number, boot: number, timeMs: number, hash: string, envelope: string }
  salt: string
  contentHash: string
}

function text (values: OptionValues, name: string, required: boolean): string | undefined {
  const v = values[name]
  if (v === undefined && !required) return undefined
  if (typeof v !== 'string') throw new UsageError(`--${name} is required`)
  if (v === '') throw new UsageError(`--${name} must not be empty`)
  if (Buffer.byteLength(v) > MAX_TEXT_BYTES) throw new UsageError(`--${name} is longer than ${MAX_TEXT_BYTES} bytes`)
  return v
}

/** Reads the sample, its size checked on the open handle so the file read is the file checked. */
async function readSample (path: string): Promise<Buffer> {
  let handle
  try {
    handle = await open(path, 'r')
  } catch (e) {
    throw new UsageError(`--file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { cause: e })
  }
  try {
    const st = await handle.stat()
    if (!st.isFile()) throw new UsageError(`--file ${path}: not a regular file`)
    if (st.size > MAX_SAMPLE_BYTES) throw new UsageError(`--file ${path}: ${st.size} bytes, at most ${MAX_SAMPLE_BYTES}`)
    return await handle.readFile()
  } catch (e) {
    if (e instanceof UsageError) throw e
    throw new UsageError(`--file ${path}: cannot read it (${(e as NodeJS.ErrnoException).code ?? 'error'})`, { cause: e })
  } finally {
    await handle.close()
  }
}

export async function runCaptureSample (values: OptionValues, io: CliIo): Promise<number> {
  // Every argument is checked before the daemon is asked: a usage error costs no seq.
  const file = resolve(text(values, 'file', true) as string)
  const dataset = text(values, 'dataset', true) as string
  const label = text(values, 'label', false)
  const name = text(values, 'name', false) ?? basename(file)
  const capturedAtMs = values['captured-at'] === undefined ? undefined : integerOption(values, 'captured-at', 0)
  const sample = await readSample(file)
  const override = values.port !== undefined ? integerOption(values, 'port', 0, 65535) : undefined
  const daemon = await findDaemon(await prepare(values, io), override)
  const query = new URLSearchParams({ dataset, ...(label === undefined ? {} : { label }), ...(capturedAtMs === undefined ? {} : { capturedAtMs: String(capturedAtMs) }) })
  const res = await requestDaemon(daemon, 'POST', `/v1/data-captures?${query.toString()}`, DEFAULT_DAEMON_TIMEOUT_MS, undefined, { bytes: sample, contentType: 'application/octet-stream' })
  const receipt = parseDaemonJson(res) as Receipt
  const capture = { name, envelope: receipt.record.envelope, salt: receipt.salt }
  printResult(io, values.json === true, { ...receipt, file, sizeBytes: sample.byteLength, dataset, label: label ?? null, capture }, () => [
    `data-capture record seq ${receipt.record.seq} (${receipt.record.hash}): ${name}, ${sample.byteLength} bytes, sha256 ${receipt.contentHash}, kept for ${dataset}${label === undefined ? '' : ` as ${label}`}`,
    'keep this captures entry with the sample (its salt opens the record\'s commitment: whoever holds it can confirm a guess of the sample):',
    JSON.stringify(capture)
  ])
  return 0
}
