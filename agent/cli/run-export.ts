/**
 * `provenance-agent export`: the records of a seq range, as a CBOR array of envelopes or as JSON
 * lines with hex bytes, written atomically (mode 0600) or to stdout.
 */
import { encodeCanonical, toHex, type SignedRecord } from '../../protocol/index.js'
import { writeFileAtomic } from '../keys/index.js'
import { integerOption, type OptionValues } from './options.js'
import { prepare, type CliIo } from './context.js'
import { UsageError } from '../../common/index.js'
import { CliError } from './errors.js'
import { openRecordSource } from './record-source.js'

export const EXPORT_FORMATS = ['cbor', 'jsonl'] as const

export async function runExport (values: OptionValues, io: CliIo): Promise<number> {
  const json = values.json === true
  const format = values.format ?? 'cbor'
  if (typeof format !== 'string' || !(EXPORT_FORMATS as readonly string[]).includes(format)) throw new UsageError(`--format must be one of ${EXPORT_FORMATS.join(', ')}`)
  const out = values.out
  if (typeof out !== 'string' || out === '') throw new UsageError('--out is required (a file, or - for stdout)')
  if (out === '-' && json) throw new UsageError('--json cannot be combined with --out - (stdout carries the export)')
  const from = integerOption(values, 'from', 0)
  const to = integerOption(values, 'to', Number.MAX_SAFE_INTEGER)
  if (from > to) throw new UsageError('--from must not be above --to')
  const setup = await prepare(values, io)
  const source = await openRecordSource(setup)
  const records: SignedRecord[] = []
  try {
    for await (const r of source.records(from, to)) records.push(r)
  } finally {
    await source.close()
  }
  const data = format === 'cbor'
    ? encodeCanonical(records.map(r => r.envelope))
    : records.map(r => JSON.stringify({ seq: r.record.seq, boot: r.record.boot, timeMs: r.record.timeMs, kind: r.record.body.kind, hash: toHex(r.hash), envelope: toHex(r.envelope) }) + '\n').join('')
  if (out === '-') {
    io.stdout.write(data)
  } else {
    try {
      await writeFileAtomic(out, data, { mode: 0o600 })
    } catch (cause) {
      throw new CliError('EXPORT_FAILED', `cannot write ${out}: ${(cause as Error).message}`, { cause })
    }
  }
  const summary = { out, format, count: records.length, firstSeq: records[0]?.record.seq ?? null, lastSeq: records.at(-1)?.record.seq ?? null, via: source.via }
  if (json) io.stdout.write(JSON.stringify(summary) + '\n')
  else io.stderr.write(`exported ${summary.count} records${summary.firstSeq !== null ? ` (seq ${summary.firstSeq}..${summary.lastSeq})` : ''} as ${format} to ${out}\n`)
  return 0
}
