/**
 * `provenance replay` on the scaffold every bin shares (common/cli): replays an incident capture
 * against the device's records and the models named by their hashes, and prints one verdict per
 * captured run. Exit codes: 0 every run ok, 1 a run is not ok (REPLAY_NOT_OK) or an error
 * (`CODE: message` on stderr), 2 usage error.
 */
import { formatHelp, runProgram, UsageError, type CliCommandSpec, type CliContext, type CliIo, type CliProgram } from '../../common/index.js'
import {
  DEFAULT_CAPTURE_MAX_BYTES, decodeBundle, decodeCanonical, decodeEnvelope, fromHex, isErrorCode, toHex, verifyShreddingStatement, type SignedRecord
} from '../../protocol/index.js'
import pkg from '../../package.json' with { type: 'json' }
import { createKeyLookup } from '../verify/key-history.js'
import { ReplayError } from './errors.js'
import { readWhole } from './model-source.js'
import { replayCapture, type ReplayReport } from './replay.js'

/** Largest records file read: 256 MiB (64 KiB envelopes, thousands of them). */
export const MAX_RECORDS_FILE_BYTES = 256 * 1024 * 1024

/** Where the CLI writes, and how it reads an incident bundle (supplied by the bundle's owner). */
export interface ReplayCliIo {
  stdout?: { write: (s: string) => unknown }
  stderr?: { write: (s: string) => unknown }
  /** Records of an incident bundle file's bytes; without it `--bundle` is a usage error. */
  readBundle?: (bytes: Uint8Array) => Iterable<SignedRecord> | Promise<Iterable<SignedRecord>>
}

/** `provenance replay` as a command of the scaffold; `readBundle` reads --bundle files. */
export function replayCommand (readBundle: ReplayCliIo['readBundle']): CliCommandSpec {
  return {
    path: ['replay'],
    summary: 're-run an incident capture through the model and check its commitments',
    description: [
      'Replays an incident capture: checks each captured input and output against the commitments of the device\'s signed record (with the captured salt), the model file\'s SHA-256 against the record, and re-runs the model on the captured inputs.',
      'Give --capture, one of --records and --bundle, and --models or --model.',
      'Verdicts: ok, record-missing, input-mismatch, output-mismatch, model-mismatch, model-missing, replay-failed, replay-diverged. Exit 0 when every run is ok; 1 otherwise (REPLAY_NOT_OK on stderr after the report) or on error; 2 on usage.'
    ],
    options: [
      { name: 'capture', type: 'string', value: 'FILE', description: 'Capture file frozen on the device (<stateDir>/captures/*.capture).' },
      { name: 'records', type: 'string', value: 'FILE', description: 'The device\'s records: a canonical CBOR array of record envelopes.' },
      { name: 'bundle', type: 'string', value: 'FILE', description: 'An incident bundle (its records are used).' },
      { name: 'models', type: 'string', value: 'DIR', description: 'Folder searched for model files by SHA-256.' },
      { name: 'model', type: 'string', value: 'SHA256=PATH', multiple: true, description: 'A model file for one hash.' },
      { name: 'tolerance', type: 'string', value: 'X', description: 'Accept float outputs within |diff| <= X + X*|captured|.' },
      { name: 'atol', type: 'string', value: 'X', description: 'Absolute tolerance (with --rtol: the two separately).' },
      { name: 'rtol', type: 'string', value: 'X', description: 'Relative tolerance.' },
      { name: 'json', type: 'boolean', description: 'Print the report as JSON.' }
    ],
    run: async (ctx) => await runReplay(ctx, readBundle)
  }
}

function replayProgram (readBundle: ReplayCliIo['readBundle']): CliProgram {
  return { name: 'provenance', version: pkg.version, summary: 'The investigator\'s tools.', commands: [replayCommand(readBundle)] }
}

/** The help of `provenance replay` (written from its options). */
export const REPLAY_USAGE = formatHelp(replayProgram(undefined), replayCommand(undefined))

/** Runs `provenance replay` with `argv` (the arguments after `replay`); resolves to the exit code. */
export async function runReplayCli (argv: readonly string[], io: ReplayCliIo = {}): Promise<number> {
  const out = io.stdout ?? process.stdout
  const err = io.stderr ?? process.stderr
  const scaffoldIo: CliIo = {
    env: {},
    stdout: { write: s => out.write(typeof s === 'string' ? s : Buffer.from(s).toString('utf8')) },
    stderr: { write: s => err.write(typeof s === 'string' ? s : Buffer.from(s).toString('utf8')) }
  }
  return await runProgram(replayProgram(io.readBundle), ['replay', ...argv], scaffoldIo)
}

async function runReplay (ctx: CliContext, readBundle: ReplayCliIo['readBundle']): Promise<{ value: undefined, failure: { code: string, message: string } } | undefined> {
  const args = parse(ctx)
  checkUsage(args, readBundle)
  const capture = await readWhole(args.capture as string, DEFAULT_CAPTURE_MAX_BYTES)
  const records = args.records !== undefined
    ? decodeRecordsFile(await readWhole(args.records, MAX_RECORDS_FILE_BYTES))
    : await readBundleRecords(args.bundle as string, readBundle)
  const shredded = args.bundle !== undefined ? await readBundleShreddings(args.bundle) : []
  const tolerance = {
    absolute: args.atol ?? args.tolerance ?? 0,
    relative: args.rtol ?? args.tolerance ?? 0
  }
  ctx.io.stderr.write(`replaying ${args.capture as string}\n`)
  const report = await replayCapture({ capture, records, modelPaths: args.modelPaths as string | Map<string, string>, tolerance, shredded })
  ctx.io.stdout.write(ctx.json ? `${JSON.stringify(report, jsonBytes, 2)}\n` : formatReport(report))
  if (report.summary.ok) return undefined
  const notOk = report.entries.filter(e => e.verdict !== 'ok').length
  return { value: undefined, failure: { code: 'REPLAY_NOT_OK', message: `${notOk} of ${report.summary.entries} run(s) not ok` } }
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

async function readBundleRecords (path: string, readBundle: ReplayCliIo['readBundle']): Promise<SignedRecord[]> {
  const bytes = await readWhole(path, MAX_RECORDS_FILE_BYTES)
  try {
    return [...await (readBundle as NonNullable<ReplayCliIo['readBundle']>)(bytes)]
  } catch (cause) {
    if (isErrorCode(cause, 'REPLAY_FILE_UNREADABLE')) throw cause
    const code = (cause as { code?: unknown })?.code
    throw new ReplayError('REPLAY_RECORDS_INVALID', `bundle ${path}: ${typeof code === 'string' ? `${code}: ` : ''}${(cause as Error).message}`, { cause })
  }
}

interface ReplayArgs {
  capture?: string
  records?: string
  bundle?: string
  modelPaths?: string | Map<string, string>
  tolerance?: number
  atol?: number
  rtol?: number
}

/** @throws UsageError */
function parse (ctx: CliContext): ReplayArgs {
  const models = ctx.string('models')
  const model = ctx.list('model')
  if (models !== undefined && model.length > 0) throw new UsageError('give --models or --model, not both')
  let modelPaths: string | Map<string, string> | undefined = models
  if (model.length > 0) {
    modelPaths = new Map()
    for (const spec of model) {
      const at = spec.indexOf('=')
      const hash = spec.slice(0, at).toLowerCase()
      if (at < 0 || hash.length !== 64 || !isHex(hash) || spec.slice(at + 1) === '') throw new UsageError(`--model wants SHA256=PATH, got "${spec}"`)
      modelPaths.set(hash, spec.slice(at + 1))
    }
  }
  const capture = ctx.string('capture')
  const records = ctx.string('records')
  const bundle = ctx.string('bundle')
  return {
    ...(capture !== undefined ? { capture } : {}),
    ...(records !== undefined ? { records } : {}),
    ...(bundle !== undefined ? { bundle } : {}),
    ...(modelPaths !== undefined ? { modelPaths } : {}),
    ...number('tolerance', ctx.string('tolerance')),
    ...number('atol', ctx.string('atol')),
    ...number('rtol', ctx.string('rtol'))
  }
}

function number<K extends string> (key: K, text: string | undefined): Partial<Record<K, number>> {
  if (text === undefined) return {}
  const v = Number(text)
  if (text.trim() === '' || !Number.isFinite(v) || v < 0) throw new UsageError(`--${key} wants a number ≥ 0, got "${text}"`)
  return { [key]: v } as Partial<Record<K, number>>
}

/** @throws UsageError for a missing or contradictory input. */
function checkUsage (args: ReplayArgs, readBundle: ReplayCliIo['readBundle']): void {
  if (args.capture === undefined) throw new UsageError('--capture is required')
  if ((args.records === undefined) === (args.bundle === undefined)) throw new UsageError('give one of --records or --bundle')
  if (args.bundle !== undefined && readBundle === undefined) throw new UsageError('--bundle is not available in this build; use --records')
  if (args.modelPaths === undefined) throw new UsageError('give --models DIR or --model SHA256=PATH')
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
