/**
 * `provenance replay`: replays an incident capture against the device's records and the models
 * named by their hashes, and prints one verdict per captured run. Exit codes: 0 every run ok,
 * 1 a run failed or an error (`CODE: message` on stderr), 2 usage error.
 */
import { parseArgs } from 'node:util'
import {
  DEFAULT_CAPTURE_MAX_BYTES, decodeBundle, decodeCanonical, decodeEnvelope, fromHex, isErrorCode, toHex, verifyShreddingStatement, type SignedRecord
} from '../../protocol/index.js'
import { createKeyLookup } from '../verify/key-history.js'
import { ReplayError } from './errors.js'
import { readWhole } from './model-source.js'
import { replayCapture, type ReplayReport } from './replay.js'

/** Largest records file read: 256 MiB (64 KiB envelopes, thousands of them). */
export const MAX_RECORDS_FILE_BYTES = 256 * 1024 * 1024

export const REPLAY_USAGE = `Usage: provenance replay --capture FILE (--records FILE | --bundle FILE)
                         (--models DIR | --model SHA256=PATH ...) [options]

Replays an incident capture: checks each captured input and output against the commitments of
the device's signed record (with the captured salt), the model file's SHA-256 against the record,
and re-runs the model on the captured inputs.

  --capture FILE        capture file frozen on the device (<stateDir>/captures/*.capture)
  --records FILE        the device's records: a canonical CBOR array of record envelopes
  --bundle FILE         an incident bundle (its records are used)
  --models DIR          folder searched for model files by SHA-256
  --model SHA256=PATH   a model file for one hash (repeatable)
  --tolerance X         accept float outputs within |diff| <= X + X*|captured|
  --atol X, --rtol X    absolute and relative tolerance separately
  --json                print the report as JSON
  --help                this text

Verdicts: ok, record-missing, input-mismatch, output-mismatch, model-mismatch, model-missing,
replay-failed, replay-diverged. Exit 0 when every run is ok, 1 otherwise or on error, 2 on usage.
`

/** Where the CLI writes, and how it reads an incident bundle (supplied by the bundle's owner). */
export interface ReplayCliIo {
  stdout?: { write: (s: string) => unknown }
  stderr?: { write: (s: string) => unknown }
  /** Records of an incident bundle file's bytes; without it `--bundle` is a usage error. */
  readBundle?: (bytes: Uint8Array) => Iterable<SignedRecord> | Promise<Iterable<SignedRecord>>
}

/** Runs `provenance replay` with `argv` (the arguments after `replay`); resolves to the exit code. */
export async function runReplayCli (argv: readonly string[], io: ReplayCliIo = {}): Promise<number> {
  const out = io.stdout ?? process.stdout
  const err = io.stderr ?? process.stderr
  let args: ReturnType<typeof parse>
  try {
    args = parse(argv)
  } catch (e) {
    err.write(`usage: ${(e as Error).message}\n\n${REPLAY_USAGE}`)
    return 2
  }
  if (args.help) {
    out.write(REPLAY_USAGE)
    return 0
  }
  const usage = checkUsage(args, io)
  if (usage !== undefined) {
    err.write(`usage: ${usage}\n\n${REPLAY_USAGE}`)
    return 2
  }
  try {
    const capture = await readWhole(args.capture as string, DEFAULT_CAPTURE_MAX_BYTES)
    const records = args.records !== undefined
      ? decodeRecordsFile(await readWhole(args.records, MAX_RECORDS_FILE_BYTES))
      : await readBundleRecords(args.bundle as string, io)
    const shredded = args.bundle !== undefined ? await readBundleShreddings(args.bundle) : []
    const tolerance = {
      absolute: args.atol ?? args.tolerance ?? 0,
      relative: args.rtol ?? args.tolerance ?? 0
    }
    err.write(`replaying ${args.capture}\n`)
    const report = await replayCapture({ capture, records, modelPaths: args.modelPaths as string | Map<string, string>, tolerance, shredded })
    out.write(args.json ? `${JSON.stringify(report, jsonBytes, 2)}\n` : formatReport(report))
    return report.summary.ok ? 0 : 1
  } catch (e) {
    const code = typeof (e as { code?: unknown })?.code === 'string' ? (e as { code: string }).code : 'REPLAY_FAILED'
    err.write(`${code}: ${(e as Error)?.message ?? String(e)}\n`)
    return 1
  }
}

/**
 * Records of a records file: a canonical CBOR array of envelopes (byte strings).
 * @throws ReplayError `REPLAY_RECORDS_INVALID`.
 */
export function decodeRecordsFile (bytes: Uint8Array): SignedRecord[] {
  let value
  try {
    value = decodeCanonical(bytes, { maxBytes: MAX_RECORDS_FILE_BYTES, maxDepth: 1 })
  } catch (cause) {
    throw new ReplayError('REPLAY_RECORDS_INVALID', `records file is not canonical CBOR: ${(cause as Error).message}`, { cause })
  }
  if (!Array.isArray(value) || !value.every(v => v instanceof Uint8Array)) {
    throw new ReplayError('REPLAY_RECORDS_INVALID', 'records file must be a CBOR array of record envelopes')
  }
  return value.map((envelope, i) => {
    try {
      return decodeEnvelope(envelope)
    } catch (cause) {
      throw new ReplayError('REPLAY_RECORDS_INVALID', `record ${i} of the records file: ${(cause as Error).message}`, { cause })
    }
  })
}

/**
 * The seq ranges of the bundle's shredding statements that verify under the device's keys; the
 * others are ignored here (verify names them `shredding-invalid`).
 */
async function readBundleShreddings (path: string): Promise<Array<{ firstSeq: number, lastSeq: number }>> {
  let bundle
  try {
    bundle = decodeBundle(await readWhole(path, MAX_RECORDS_FILE_BYTES))
  } catch {
    return []
  }
  const keyAt = createKeyLookup(bundle.device.id, bundle.device.keys)
  const out: Array<{ firstSeq: number, lastSeq: number }> = []
  for (const b64 of bundle.shreddings ?? []) {
    try {
      const s = verifyShreddingStatement(Buffer.from(b64, 'base64'), keyAt).statement
      if (s.deviceId === bundle.device.id) out.push(...s.ranges)
    } catch { /* not trusted: not applied */ }
  }
  return out
}

async function readBundleRecords (path: string, io: ReplayCliIo): Promise<SignedRecord[]> {
  const bytes = await readWhole(path, MAX_RECORDS_FILE_BYTES)
  try {
    return [...await (io.readBundle as NonNullable<ReplayCliIo['readBundle']>)(bytes)]
  } catch (cause) {
    if (isErrorCode(cause, 'REPLAY_FILE_UNREADABLE')) throw cause
    const code = (cause as { code?: unknown })?.code
    throw new ReplayError('REPLAY_RECORDS_INVALID', `bundle ${path}: ${typeof code === 'string' ? `${code}: ` : ''}${(cause as Error).message}`, { cause })
  }
}

function parse (argv: readonly string[]): {
  help: boolean, json: boolean, capture?: string, records?: string, bundle?: string,
  modelPaths?: string | Map<string, string>, tolerance?: number, atol?: number, rtol?: number
} {
  const { values } = parseArgs({
    args: [...argv],
    strict: true,
    allowPositionals: false,
    options: {
      capture: { type: 'string' },
      records: { type: 'string' },
      bundle: { type: 'string' },
      models: { type: 'string' },
      model: { type: 'string', multiple: true },
      tolerance: { type: 'string' },
      atol: { type: 'string' },
      rtol: { type: 'string' },
      json: { type: 'boolean' },
      help: { type: 'boolean', short: 'h' }
    }
  })
  if (values.models !== undefined && values.model !== undefined) throw new Error('give --models or --model, not both')
  let modelPaths: string | Map<string, string> | undefined = values.models
  if (values.model !== undefined) {
    modelPaths = new Map()
    for (const spec of values.model) {
      const at = spec.indexOf('=')
      const hash = spec.slice(0, at).toLowerCase()
      if (at < 0 || hash.length !== 64 || !isHex(hash) || spec.slice(at + 1) === '') throw new Error(`--model wants SHA256=PATH, got "${spec}"`)
      modelPaths.set(hash, spec.slice(at + 1))
    }
  }
  return {
    help: values.help === true,
    json: values.json === true,
    ...(values.capture !== undefined ? { capture: values.capture } : {}),
    ...(values.records !== undefined ? { records: values.records } : {}),
    ...(values.bundle !== undefined ? { bundle: values.bundle } : {}),
    ...(modelPaths !== undefined ? { modelPaths } : {}),
    ...number('tolerance', values.tolerance),
    ...number('atol', values.atol),
    ...number('rtol', values.rtol)
  }
}

function number<K extends string> (key: K, text: string | undefined): Partial<Record<K, number>> {
  if (text === undefined) return {}
  const v = Number(text)
  if (text.trim() === '' || !Number.isFinite(v) || v < 0) throw new Error(`--${key} wants a number ≥ 0, got "${text}"`)
  return { [key]: v } as Partial<Record<K, number>>
}

function checkUsage (args: ReturnType<typeof parse>, io: ReplayCliIo): string | undefined {
  if (args.capture === undefined) return '--capture is required'
  if ((args.records === undefined) === (args.bundle === undefined)) return 'give one of --records or --bundle'
  if (args.bundle !== undefined && io.readBundle === undefined) return '--bundle is not available in this build; use --records'
  if (args.modelPaths === undefined) return 'give --models DIR or --model SHA256=PATH'
  return undefined
}

function isHex (s: string): boolean {
  try { fromHex(s); return true } catch { return false }
}

/** The human-readable report: one line per run, then the summary. */
export function formatReport (report: ReplayReport): string {
  const s = report.summary
  const lines = [`capture ${s.captureSha256}`, `device ${s.deviceId}, reason "${s.reason}", frozen ${new Date(s.frozenAtMs).toISOString()}, ${s.entries} runs`]
  for (const m of s.models) lines.push(`model ${m.modelHash}: ${m.status}${m.path !== undefined ? ` (${m.path})` : ''}${m.fileHash !== undefined ? `, file hash ${m.fileHash}` : ''}`)
  for (const e of report.entries) {
    const how = e.verdict === 'ok'
      ? (e.replay.status === 'exact' ? ' (exact)' : ` (within tolerance: max |diff| ${e.replay.maxAbsDiff}, max rel ${e.replay.maxRelDiff})`)
      : ''
    lines.push(`seq ${e.seq}: ${e.verdict}${how}`)
    for (const f of e.findings) lines.push(`  ${f.code}: ${f.message}`)
  }
  const failed = s.entries - s.counts.ok - s.counts.shredded
  lines.push(`${s.counts.ok} ok (${s.exact} exact, ${s.withinTolerance} within tolerance ${s.tolerance.absolute}+${s.tolerance.relative}·|x|), ${s.counts.shredded > 0 ? `${s.counts.shredded} shredded (not opened), ` : ''}${failed} not ok`)
  return `${lines.join('\n')}\n`
}

function jsonBytes (_key: string, value: unknown): unknown {
  return value instanceof Uint8Array ? toHex(value) : value
}
