/**
 * `provenance dataset hash|verify` and `provenance training record|verify|diff`: the lineage
 * commands of the forensics CLI (run by the scaffold, forensics/cli/program.ts). Results on stdout, progress
 * on stderr only on a terminal, errors as `CODE: message`. docs/LINEAGE.md.
 */
import { createHash } from 'node:crypto'
import { resolve } from 'node:path'
import { createSigner } from '../../protocol/index.js'
import { ForensicsError } from '../errors.js'
import type { CliCommandSpec, CliOptionSpec } from '../../common/index.js'
import { intFlag, stringFlag, UsageError, type ParsedArgs } from '../cli/args.js'
import type { CommandFailure } from '../cli/commands.js'
import { createProgress, type ProgressStream } from '../cli/progress.js'
import { readBounded, writeOut } from '../cli/files.js'
import { DEFAULT_MANIFEST_MAX_BYTES, encodeManifest, hashTree, parseManifest, verifyTree, type Manifest, type ManifestDiff } from './manifest.js'
import { DEFAULT_ENVELOPE_MAX_BYTES } from './dsse.js'
import type { DeviceKeyLookup } from './captures.js'
import { parseDeviceKeyList, registryDeviceKeys } from './device-keys.js'
import type { JsonValue } from './jcs.js'
import {
  buildTrainingStatement, checkTrainingRun, diffTrainingRuns, parseTrainingRun, signTrainingStatement,
  type DatasetRef, type SignedTrainingRun, type TrainingCheck, type TrainingFacts
} from './training.js'

export interface LineageCliIo {
  stdout: (text: string) => void
  stderr: ProgressStream
  env: Record<string, string | undefined>
}

/** Environment variable read for the trainer's key file when --key-file is not given. */
export const TRAINER_KEY_FILE_ENV = 'PROVENANCE_TRAINER_KEY_FILE'

/**
 * A lineage command as forensics/cli/program.ts hands it to the scaffold: words, help and options,
 * and its run on the parsed command line, returning the failure it found (exit 1) or undefined.
 */
export type LineageCommand = Omit<CliCommandSpec, 'run'> & {
  readonly runWith: (args: ParsedArgs, io: LineageCliIo) => Promise<CommandFailure>
}

/** `--device-keys`, as the commands that check device records take it. */
export const DEVICE_KEYS_OPTION: CliOptionSpec = { name: 'device-keys', type: 'string', value: 'LIST', description: 'ID=HEX64[:revoked],... device public keys (offline).' }

/** `provenance dataset hash|verify` (captures, capture-proofs and register are in files of their own). */
export const DATASET_COMMANDS: readonly LineageCommand[] = [
  {
    path: ['dataset', 'hash'],
    summary: 'hash a dataset or model folder into an OpenSSF model-signing manifest',
    description: [
      'Usage: provenance dataset hash <dir> [options], or provenance dataset hash --root DIR <file>... [options].',
      'Hashes every file once (SHA-256, worker threads) into an OpenSSF model-signing v1.0 manifest (with --root: the given files, which must lie inside DIR, named relative to it): an in-toto Statement whose subject digest is SHA-256 over the per-file digests in name order (names: POSIX paths relative to the folder, sorted by UTF-8 bytes). Works for model folders too: an ONNX model\'s external-data files are files of the folder, so the digest covers them.'
    ],
    positionals: [{ name: 'path', description: 'the folder; with --root, the files to hash', variadic: true }],
    options: [
      { name: 'out', type: 'string', value: 'FILE', description: 'Write the manifest there (default: stdout).' },
      { name: 'name', type: 'string', value: 'NAME', description: 'Subject name (default: the folder\'s name).' },
      { name: 'root', type: 'string', value: 'DIR', description: 'Hash the given files, named relative to DIR.' },
      { name: 'ignore', type: 'string', value: 'P1,P2', description: 'Glob patterns to leave out (docs/LINEAGE.md §1.2); recorded in the manifest.' },
      { name: 'shard-size', type: 'string', value: 'BYTES', description: 'OMS "shards": every file in pieces of BYTES, hashed in parallel.' },
      { name: 'workers', type: 'string', value: 'N', description: 'Hashing threads (default: cores, at most 4).' },
      { name: 'follow-symlinks', type: 'boolean', description: 'Hash symlink targets (default: a symlink is an error, LINEAGE_SYMLINK).' },
      { name: 'json', type: 'boolean', description: 'With --out: a JSON summary on stdout; never a progress bar.' },
      { name: 'quiet', type: 'boolean', description: 'No progress.' }
    ],
    runWith: async (args, io) => await runDatasetHash(args, io)
  },
  {
    path: ['dataset', 'verify'],
    summary: 're-hash a folder against its manifest and name what changed',
    description: [
      'Re-hashes the folder with the manifest\'s serialization (ignore patterns, shards, symlink rule) and names every added, removed and changed file.',
      'Exit 0: the folder matches. Exit 1: it differs (DATASET_CHANGED on stderr), or an error.'
    ],
    positionals: [{ name: 'dir', description: 'the folder' }],
    options: [
      { name: 'manifest', type: 'string', value: 'FILE', description: 'The manifest to check against (required).' },
      { name: 'workers', type: 'string', value: 'N', description: 'Hashing threads.' },
      { name: 'json', type: 'boolean', description: 'The result as JSON on stdout.' },
      { name: 'quiet', type: 'boolean', description: 'No progress.' }
    ],
    runWith: async (args, io) => await runDatasetVerify(args, io)
  }
]

/** `provenance training record|verify|diff`. */
export const TRAINING_COMMANDS: readonly LineageCommand[] = [
  {
    path: ['training', 'record'],
    summary: 'write a signed training-run statement (DSSE, in-toto)',
    description: [
      'Writes a training-run statement (in-toto Statement v1, predicate https://edge-provenance.dev/training-run/v1) signed as a DSSE envelope with the trainer\'s Ed25519 key (docs/LINEAGE.md §2).',
      `Required: --model, --name, --code-revision, --key-file (or $${TRAINER_KEY_FILE_ENV}).`
    ],
    options: [
      { name: 'model', type: 'string', value: 'FILE', description: 'The trained model file (its SHA-256 is the subject).' },
      { name: 'name', type: 'string', value: 'NAME', description: 'The model\'s name.' },
      { name: 'manifest-hash', type: 'string', value: 'HEX', description: 'The model\'s tensor manifest hash (as registered).' },
      { name: 'model-manifest', type: 'string', value: 'FILE', description: 'An OMS manifest of the model folder: its digest is recorded as folderDigest.' },
      { name: 'base-model', type: 'string', value: 'FILE', description: 'The model training started from.' },
      { name: 'datasets', type: 'string', value: 'LIST', description: 'NAME@VERSION=MANIFEST.json,... : dataset manifests read (their root digests).' },
      { name: 'hyperparameters', type: 'string', value: 'FILE', description: 'A JSON object (hashed in RFC 8785 form).' },
      { name: 'code-revision', type: 'string', value: 'REV', description: 'E.g. a git commit.' },
      { name: 'env', type: 'string', value: 'K=V,K=V', description: 'Environment facts (framework versions, hardware).' },
      { name: 'started-at', type: 'string', value: 'TIME', description: 'RFC 3339 UTC (default: now).' },
      { name: 'finished-at', type: 'string', value: 'TIME', description: 'RFC 3339 UTC (default: now).' },
      { name: 'key-file', type: 'string', value: 'FILE', description: `Trainer seed: 64 hex digits (default: $${TRAINER_KEY_FILE_ENV}).` },
      { name: 'out', type: 'string', value: 'FILE', description: 'Write the envelope there (default: stdout).' },
      { name: 'json', type: 'boolean', description: 'With --out: a JSON summary on stdout.' }
    ],
    runWith: async (args, io) => await runTrainingRecord(args, io)
  },
  {
    path: ['training', 'verify'],
    summary: 'check a training-run statement: trainer signature, files, the chain',
    description: [
      'Checks the envelope\'s signature by a known trainer key, and the statement against files and the chain: each check is listed with its reason when it fails (docs/LINEAGE.md §2.4). Give --trainer-keys, or --rpc-url with --lineage.',
      'Exit 0: every check passed. Exit 1: a check failed (TRAINING_RUN_INVALID on stderr), or an error.'
    ],
    positionals: [{ name: 'run.dsse.json', description: 'the training-run envelope' }],
    options: [
      { name: 'trainer-keys', type: 'string', value: 'HEX,...', description: 'Trusted trainer public keys (offline).' },
      { name: 'rpc-url', type: 'string', value: 'URL', description: 'Read trainer keys, datasets and the model\'s training run from the chain.' },
      { name: 'lineage', type: 'string', value: 'ADDRESS', description: 'The LineageRegistry address (with --rpc-url).' },
      { name: 'model', type: 'string', value: 'FILE', description: 'The model file: its SHA-256 must be the subject.' },
      { name: 'base-model', type: 'string', value: 'FILE', description: 'The base model file.' },
      { name: 'datasets', type: 'string', value: 'LIST', description: 'NAME=MANIFEST.json[=DIR],... : each manifest\'s digest must be the stated one; with DIR, the folder is re-hashed against the manifest.' },
      { name: 'json', type: 'boolean', description: 'The checks as JSON on stdout.' }
    ],
    runWith: async (args, io) => await runTrainingVerify(args, io)
  },
  {
    path: ['training', 'diff'],
    summary: 'what changed from one training run to another',
    description: ['What changed from run a to run b: hyperparameters by JSON Pointer (compared in RFC 8785 form), then datasets, base model, output model, code revision and environment. Signatures are not checked.'],
    positionals: [{ name: 'a.dsse.json', description: 'the first run' }, { name: 'b.dsse.json', description: 'the second run' }],
    options: [{ name: 'json', type: 'boolean', description: 'The differences as JSON on stdout.' }],
    runWith: async (args, io) => await runTrainingDiff(args, io)
  }
]

// ---------------------------------------------------------------------------------------------
// Files

/** SHA-256 (hex) of a file, streamed. */
export async function hashFile (path: string): Promise<string> {
  const { createReadStream } = await import('node:fs')
  const h = createHash('sha256')
  try {
    for await (const chunk of createReadStream(path)) h.update(chunk as Buffer)
  } catch (e) {
    throw new ForensicsError('IO_FAILED', `cannot read ${path}: ${(e as Error).message}`, { cause: e })
  }
  return h.digest('hex')
}

export async function readManifestFile (path: string): Promise<Manifest> {
  return parseManifest(await readBounded(path, DEFAULT_MANIFEST_MAX_BYTES))
}

async function readRunFile (path: string): Promise<SignedTrainingRun> {
  return parseTrainingRun(await readBounded(path, DEFAULT_ENVELOPE_MAX_BYTES))
}

function list (value: string | undefined): string[] {
  return value === undefined ? [] : value.split(',').map(s => s.trim()).filter(s => s !== '')
}

// ---------------------------------------------------------------------------------------------
// dataset

function progressFor (args: ParsedArgs, io: LineageCliIo, label: string): (done: number, total: number) => void {
  // A bar on a terminal only: --json output goes to machines, and a pipe gets no redraws.
  const enabled = io.stderr.isTTY === true && !args.flags.has('json') && !args.flags.has('quiet')
  const progress = createProgress(io.stderr, { label }, enabled)
  return (done, total) => {
    progress.update('bytes', done, total)
    if (done >= total) progress.finish()
  }
}

async function runDatasetHash (args: ParsedArgs, io: LineageCliIo): Promise<CommandFailure> {
  const root = stringFlag(args, 'root')
  if (root === undefined && args.positional.length !== 1) throw new UsageError('give one folder, or --root DIR and files')
  if (root !== undefined && args.positional.length === 0) throw new UsageError('--root needs the files to hash')
  const shardSize = intFlag(args, 'shard-size')
  const workers = intFlag(args, 'workers')
  const out = stringFlag(args, 'out')
  const name = stringFlag(args, 'name')
  const dir = root ?? args.positional[0] ?? ''
  const ignore = list(stringFlag(args, 'ignore'))
  // A manifest written into the folder it describes must not describe itself.
  if (out !== undefined && root === undefined) {
    const rel = resolve(out).slice(resolve(dir).length + 1)
    if (resolve(out).startsWith(resolve(dir) + '/') && !ignore.includes(rel)) ignore.push(rel)
  }
  const onProgress = progressFor(args, io, 'hash')
  let manifest: Manifest
  try {
    manifest = await hashTree(dir, {
      ignore,
      followSymlinks: args.flags.has('follow-symlinks'),
      ...(root === undefined ? {} : { files: args.positional }),
      ...(name === undefined ? {} : { name }),
      ...(shardSize === undefined ? {} : { shardSizeBytes: shardSize }),
      ...(workers === undefined ? {} : { workers }),
      onProgress: (done, total) => onProgress(done, total)
    })
  } catch (e) {
    if (e instanceof TypeError) throw new UsageError(e.message)
    throw e
  }
  const text = encodeManifest(manifest)
  if (out === undefined) { io.stdout(text); return undefined }
  await writeOut(out, text)
  const files = new Set(manifest.predicate.resources.map(r => r.name.replace(/:\d+:\d+$/, ''))).size
  const bytes = manifest.predicate.resources.reduce((n, r) => n + r.size, 0)
  const summary = { out, name: manifest.subject[0].name, digest: manifest.subject[0].digest.sha256, files, resources: manifest.predicate.resources.length, bytes }
  io.stdout(args.flags.has('json') ? JSON.stringify(summary, null, 2) + '\n' : `${summary.digest}  ${summary.name} (${files} files, ${bytes} bytes) -> ${out}\n`)
  return undefined
}

function formatDiff (d: ManifestDiff): string {
  const lines = [d.equal ? `MATCH  ${d.expectedRoot}` : `DIFFERS  manifest ${d.expectedRoot}, folder ${d.actualRoot}`]
  for (const f of d.added) lines.push(`  added    ${f}`)
  for (const f of d.removed) lines.push(`  removed  ${f}`)
  for (const f of d.changed) lines.push(`  changed  ${f}`)
  return lines.join('\n') + '\n'
}

async function runDatasetVerify (args: ParsedArgs, io: LineageCliIo): Promise<CommandFailure> {
  if (args.positional.length !== 1) throw new UsageError('give one folder')
  const manifestPath = stringFlag(args, 'manifest')
  if (manifestPath === undefined) throw new UsageError('--manifest is required')
  const workers = intFlag(args, 'workers')
  const manifest = await readManifestFile(manifestPath)
  const onProgress = progressFor(args, io, 'verify')
  const diff = await verifyTree(args.positional[0] as string, manifest, { ...(workers === undefined ? {} : { workers }), onProgress })
  io.stdout(args.flags.has('json') ? JSON.stringify(diff, null, 2) + '\n' : formatDiff(diff))
  if (!diff.equal) return { code: 'DATASET_CHANGED', message: `${diff.added.length} added, ${diff.removed.length} removed, ${diff.changed.length} changed` }
  return undefined
}

/**
 * The device keys a command names: `--device-keys` offline, or `--rpc-url` and `--registry`.
 * @throws UsageError when neither or both are given.
 */
export async function deviceKeysFrom (args: ParsedArgs): Promise<{ lookup: DeviceKeyLookup, close: () => void }> {
  const list = stringFlag(args, 'device-keys')
  const rpcUrl = stringFlag(args, 'rpc-url')
  const registry = stringFlag(args, 'registry')
  if ((list === undefined) === (rpcUrl === undefined)) throw new UsageError('give --device-keys, or --rpc-url with --registry')
  if (list !== undefined) {
    try { return { lookup: parseDeviceKeyList(list), close: () => {} } } catch (e) { throw new UsageError((e as Error).message) }
  }
  if (registry === undefined) throw new UsageError('--registry is required with --rpc-url')
  return await registryDeviceKeys(rpcUrl as string, registry)
}

// ---------------------------------------------------------------------------------------------
// training

const HEX64 = /^[0-9a-f]{64}$/

/** Reads an Ed25519 seed file: 64 hex digits, surrounding whitespace allowed. */
export async function readSeedFile (path: string): Promise<Uint8Array> {
  const text = Buffer.from(await readBounded(path, 1024)).toString('utf8').trim()
  if (!HEX64.test(text.toLowerCase())) throw new ForensicsError('TRAINER_KEY_INVALID', `${path}: expected a 32-byte seed as 64 hex digits`)
  return new Uint8Array(Buffer.from(text, 'hex'))
}

function timeArg (args: ParsedArgs, name: string, now: string): string {
  const v = stringFlag(args, name)
  if (v === undefined) return now
  if (!/^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(?:\.\d{1,9})?Z$/.test(v) || Number.isNaN(Date.parse(v))) throw new UsageError(`--${name} must be an RFC 3339 UTC time like 2026-01-02T03:04:05Z`)
  return v
}

async function runTrainingRecord (args: ParsedArgs, io: LineageCliIo): Promise<CommandFailure> {
  if (args.positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args.positional[0])}`)
  const need = (name: string): string => {
    const v = stringFlag(args, name)
    if (v === undefined) throw new UsageError(`--${name} is required`)
    return v
  }
  const modelPath = need('model')
  const name = need('name')
  const codeRevision = need('code-revision')
  const keyFile = stringFlag(args, 'key-file') ?? io.env[TRAINER_KEY_FILE_ENV]
  if (keyFile === undefined || keyFile === '') throw new UsageError(`--key-file (or $${TRAINER_KEY_FILE_ENV}) is required`)
  const manifestHash = stringFlag(args, 'manifest-hash')
  if (manifestHash !== undefined && !HEX64.test(manifestHash)) throw new UsageError('--manifest-hash must be 64 lower-case hex digits')
  const datasets: DatasetRef[] = []
  for (const item of list(stringFlag(args, 'datasets'))) {
    const m = /^([^@=]+)@([^=]*)=(.+)$/.exec(item)
    if (m === null) throw new UsageError(`--datasets: expected NAME@VERSION=MANIFEST, got ${JSON.stringify(item)}`)
    const manifest = await readManifestFile(m[3] as string)
    datasets.push({ name: m[1] as string, version: m[2] as string, digest: { sha256: manifest.subject[0].digest.sha256 } })
  }
  const environment: Record<string, string> = {}
  for (const item of list(stringFlag(args, 'env'))) {
    const eq = item.indexOf('=')
    if (eq < 1) throw new UsageError(`--env: expected K=V, got ${JSON.stringify(item)}`)
    environment[item.slice(0, eq)] = item.slice(eq + 1)
  }
  let hyperparameters: Record<string, JsonValue> = {}
  const hpPath = stringFlag(args, 'hyperparameters')
  if (hpPath !== undefined) {
    let v: unknown
    try {
      v = JSON.parse(Buffer.from(await readBounded(hpPath, 1024 * 1024)).toString('utf8'))
    } catch (e) {
      if (e instanceof ForensicsError) throw e
      throw new ForensicsError('CANONICAL_JSON_INVALID', `${hpPath} is not valid JSON`, { cause: e })
    }
    if (typeof v !== 'object' || v === null || Array.isArray(v)) throw new ForensicsError('CANONICAL_JSON_INVALID', `${hpPath}: expected a JSON object`)
    hyperparameters = v as Record<string, JsonValue>
  }
  const modelManifest = stringFlag(args, 'model-manifest')
  const folderDigest = modelManifest === undefined ? null : (await readManifestFile(modelManifest)).subject[0].digest.sha256
  const basePath = stringFlag(args, 'base-model')
  const now = new Date().toISOString().replace(/\.\d+Z$/, 'Z')
  const statement = buildTrainingStatement({
    datasets,
    baseModelHash: basePath === undefined ? null : await hashFile(basePath),
    outputModel: { name, hash: await hashFile(modelPath), manifestHash: manifestHash ?? null, folderDigest },
    hyperparameters,
    codeRevision,
    environment,
    startedAt: timeArg(args, 'started-at', now),
    finishedAt: timeArg(args, 'finished-at', now)
  })
  const signer = createSigner(await readSeedFile(keyFile))
  const envelope = signTrainingStatement(statement, signer)
  const text = JSON.stringify(envelope, null, 2) + '\n'
  const out = stringFlag(args, 'out')
  if (out === undefined) { io.stdout(text); return undefined }
  await writeOut(out, text)
  const run = parseTrainingRun(new Uint8Array(Buffer.from(text)))
  const summary = { out, model: statement.subject[0].digest.sha256, statementHash: run.statementHash, trainerKey: Buffer.from(signer.publicKey).toString('hex') }
  io.stdout(args.flags.has('json') ? JSON.stringify(summary, null, 2) + '\n' : `training run of ${summary.model} signed by ${summary.trainerKey}, statement ${summary.statementHash} -> ${out}\n`)
  return undefined
}

/** Chain facts for a training run, loaded on demand (the offline path loads no chain code). */
export type ChainFactsLoader = (rpcUrl: string, lineage: string, run: SignedTrainingRun) => Promise<Pick<TrainingFacts, 'trainerKeys' | 'registeredStatementHash' | 'registeredDatasets'>>

let chainFactsLoader: ChainFactsLoader | undefined
/** Installs the reader of chain facts (chain-facts.ts registers itself; tests may too). */
export function setChainFactsLoader (loader: ChainFactsLoader): void { chainFactsLoader = loader }

async function runTrainingVerify (args: ParsedArgs, io: LineageCliIo): Promise<CommandFailure> {
  if (args.positional.length !== 1) throw new UsageError('give one envelope file')
  const run = await readRunFile(args.positional[0] as string)
  const keysFlag = stringFlag(args, 'trainer-keys')
  const rpcUrl = stringFlag(args, 'rpc-url')
  const lineage = stringFlag(args, 'lineage')
  if ((keysFlag === undefined) === (rpcUrl === undefined)) throw new UsageError('give --trainer-keys (offline) or --rpc-url with --lineage')
  const facts: TrainingFacts = { trainerKeys: [] }
  if (keysFlag !== undefined) {
    const keys = list(keysFlag)
    if (keys.length === 0 || !keys.every(k => HEX64.test(k))) throw new UsageError('--trainer-keys: 64 lower-case hex digits each')
    facts.trainerKeys = keys.map(k => new Uint8Array(Buffer.from(k, 'hex')))
  } else {
    if (lineage === undefined || !/^0x[0-9a-fA-F]{40}$/.test(lineage)) throw new UsageError('--lineage must be a 0x-hex address')
    if (chainFactsLoader === undefined) await import('./chain-facts.js')
    Object.assign(facts, await (chainFactsLoader as ChainFactsLoader)(rpcUrl as string, lineage, run))
  }
  const model = stringFlag(args, 'model')
  if (model !== undefined) facts.modelHash = await hashFile(model)
  const base = stringFlag(args, 'base-model')
  if (base !== undefined) facts.baseModelHash = await hashFile(base)
  const extra: TrainingCheck[] = []
  const datasets = list(stringFlag(args, 'datasets'))
  if (datasets.length > 0) {
    const digests = new Map<string, string>()
    for (const item of datasets) {
      const [name, manifestPath, dir, ...more] = item.split('=')
      if (name === undefined || name === '' || manifestPath === undefined || manifestPath === '' || more.length > 0) throw new UsageError(`--datasets: expected NAME=MANIFEST[=DIR], got ${JSON.stringify(item)}`)
      const manifest = await readManifestFile(manifestPath)
      digests.set(name, manifest.subject[0].digest.sha256)
      if (dir !== undefined && dir !== '') {
        const diff = await verifyTree(dir, manifest)
        const what = [...diff.added.map(f => `added ${f}`), ...diff.removed.map(f => `removed ${f}`), ...diff.changed.map(f => `changed ${f}`)]
        extra.push(diff.equal
          ? { check: `dataset ${name} files`, ok: true, detail: `${dir} matches ${manifestPath}` }
          : { check: `dataset ${name} files`, ok: false, reason: 'DATASET_MISMATCH', detail: what.slice(0, 20).join(', ') + (what.length > 20 ? ` and ${what.length - 20} more` : '') })
      }
    }
    facts.datasetDigests = digests
  }
  const result = checkTrainingRun(run, facts)
  const checks = [...result.checks, ...extra]
  const valid = checks.every(c => c.ok)
  const report = { valid, model: run.statement.subject[0].digest.sha256, statementHash: run.statementHash, checks }
  io.stdout(args.flags.has('json')
    ? JSON.stringify(report, null, 2) + '\n'
    : [`${valid ? 'VALID' : 'INVALID'}  training run of ${report.model}, statement ${report.statementHash}`,
        ...checks.map(c => `  ${c.ok ? 'ok  ' : 'FAIL'}  ${c.check.padEnd(28)} ${c.reason === undefined ? '' : c.reason + ': '}${c.detail}`)].join('\n') + '\n')
  if (!valid) {
    const first = checks.find(c => !c.ok) as TrainingCheck
    return { code: 'TRAINING_RUN_INVALID', message: `${checks.filter(c => !c.ok).length} check(s) failed; first: ${first.check} ${first.reason ?? ''}` }
  }
  return undefined
}

async function runTrainingDiff (args: ParsedArgs, io: LineageCliIo): Promise<CommandFailure> {
  if (args.positional.length !== 2) throw new UsageError('give two envelope files')
  const a = await readRunFile(args.positional[0] as string)
  const b = await readRunFile(args.positional[1] as string)
  const diff = diffTrainingRuns(a.statement, b.statement)
  if (args.flags.has('json')) { io.stdout(JSON.stringify(diff, null, 2) + '\n'); return undefined }
  const show = (v: JsonValue | undefined): string => v === undefined ? '(absent)' : JSON.stringify(v)
  const lines = [`hyperparameters: ${diff.hyperparameters.length === 0 ? 'identical' : `${diff.hyperparameters.length} change(s)`}`]
  for (const c of diff.hyperparameters) lines.push(`  ${c.from === undefined ? '+' : c.to === undefined ? '-' : '~'} ${c.path}: ${show(c.from)} -> ${show(c.to)}`)
  lines.push(`other claims: ${diff.other.length === 0 ? 'identical' : `${diff.other.length} change(s)`}`)
  for (const c of diff.other) lines.push(`  ~ ${c.path}: ${show(c.from)} -> ${show(c.to)}`)
  io.stdout(lines.join('\n') + '\n')
  return undefined
}
