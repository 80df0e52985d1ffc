/**
 * `provenance fl aggregate` and `provenance fl contributors`: a federated round's aggregation into a
 * new ONNX model with its signed round statement, and the fair attribution of a model to the devices
 * that contributed to it, each contribution re-checked (docs/LINEAGE.md §6).
 */
import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { createSigner } from '../../protocol/index.js'
import { ForensicsError } from '../errors.js'
import { stringFlag, UsageError, type ParsedArgs } from '../cli/args.js'
import type { CommandFailure } from '../cli/commands.js'
import { readBounded } from '../cli/files.js'
import { deviceKeysFrom, readSeedFile, DEVICE_KEYS_OPTION, TRAINER_KEY_FILE_ENV, type LineageCliIo, type LineageCommand } from './cli.js'
import { DEFAULT_ENVELOPE_MAX_BYTES } from './dsse.js'
import { lineageRunFacts } from './device-keys.js'
import {
  aggregateRound, checkRound, parseContributions, parseRound, DEFAULT_CONTRIBUTIONS_MAX_BYTES, FL_CONTRIBUTIONS_FORMAT,
  type ContributionCheck, type RoundFacts
} from './federated.js'

const MODEL_MAX_BYTES = 256 * 1024 * 1024

/** `provenance fl …` as the scaffold runs them (forensics/cli/program.ts): words, help, options, run. */
export const FL_COMMANDS: readonly LineageCommand[] = [
  {
    path: ['fl', 'aggregate'],
    summary: 'FedAvg of a round\'s checked device contributions into a new ONNX model, with its signed round statement',
    description: [
      `Checks every contribution of the round (${FL_CONTRIBUTIONS_FORMAT}): its update is for this round and base model, its data-capture record is signed by a registered, non-revoked device and commits to the update. Averages the accepted ones by sample count (FedAvg) into a new ONNX model and signs a round statement (DSSE, in-toto, predicate https://edge-provenance.dev/fl-round/v1) listing each by record hash and weight. Rejected contributions are listed with their reason and never used.`,
      'Required: --base-model, --round, --contributions, --name, --key-file (or its variable), --out, --statement, and --device-keys or --rpc-url with --registry.',
      'Exit 0: a model was written. Exit 1: no contribution was accepted (FL_NO_ACCEPTED_CONTRIBUTION), or an error.'
    ],
    options: [
      { name: 'base-model', type: 'string', value: 'FILE', description: 'The round\'s starting model (logistic regression ONNX).' },
      { name: 'round', type: 'string', value: 'ID', description: 'The round id (records\' dataset is fl:ID).' },
      { name: 'contributions', type: 'string', value: 'FILE', description: 'The devices\' contributions.' },
      { name: 'name', type: 'string', value: 'NAME', description: 'The new model\'s name.' },
      { name: 'key-file', type: 'string', value: 'FILE', description: `The aggregator's trainer seed (default: $${TRAINER_KEY_FILE_ENV}).` },
      DEVICE_KEYS_OPTION,
      { name: 'rpc-url', type: 'string', value: 'URL', description: 'Read device keys from the ProvenanceRegistry (with --registry).' },
      { name: 'registry', type: 'string', value: 'ADDRESS', description: 'The ProvenanceRegistry address.' },
      { name: 'out', type: 'string', value: 'FILE', description: 'The new model.' },
      { name: 'statement', type: 'string', value: 'FILE', description: 'The signed round statement (attach its hash as the model\'s training run).' },
      { name: 'json', type: 'boolean', description: 'A JSON summary on stdout.' }
    ],
    runWith: async (args, io) => await runAggregate(args, io)
  },
  {
    path: ['fl', 'contributors'],
    summary: 'the devices that contributed to a model, their weights, each contribution re-checked',
    description: [
      'Lists the devices that contributed to the model, their sample counts and weights, and checks: the statement is signed by a known trainer, names this model, is the training run the chain attaches to it (online); with --contributions, each listed contribution is re-checked (device registered and not revoked, signature, commitment); with --model and --base-model, FedAvg is recomputed.',
      'Required: --statement, and --trainer-keys or --rpc-url with --lineage; with --contributions, --device-keys or --registry.',
      'Exit 0: every check passed. Exit 1: one failed (ROUND_INVALID on stderr), or an error.'
    ],
    positionals: [{ name: 'modelHash', description: 'the model\'s SHA-256 (64 lower-case hex digits)' }],
    options: [
      { name: 'statement', type: 'string', value: 'FILE', description: 'The round statement (fl aggregate --statement).' },
      { name: 'trainer-keys', type: 'string', value: 'HEX,...', description: 'Trusted trainer keys (offline).' },
      { name: 'rpc-url', type: 'string', value: 'URL', description: 'Read trainer keys and the attached run from the LineageRegistry.' },
      { name: 'lineage', type: 'string', value: 'ADDRESS', description: 'The LineageRegistry address.' },
      { name: 'registry', type: 'string', value: 'ADDRESS', description: 'The ProvenanceRegistry, for device keys (with --rpc-url).' },
      DEVICE_KEYS_OPTION,
      { name: 'contributions', type: 'string', value: 'FILE', description: 'The round\'s contributions.' },
      { name: 'model', type: 'string', value: 'FILE', description: 'The model, to recompute the average (with --base-model).' },
      { name: 'base-model', type: 'string', value: 'FILE', description: 'The round\'s base model (with --model).' },
      { name: 'json', type: 'boolean', description: 'The result as JSON on stdout.' }
    ],
    runWith: async (args, io) => await runContributors(args, io)
  }
]

function need (args: ParsedArgs, name: string): string {
  const v = stringFlag(args, name)
  if (v === undefined) throw new UsageError(`--${name} is required`)
  return v
}

async function write (path: string, data: Uint8Array | string): Promise<void> {
  try { await writeFile(path, data) } catch (e) { throw new ForensicsError('IO_FAILED', `cannot write ${path}: ${(e as Error).message}`, { cause: e }) }
}

function contributionLine (c: ContributionCheck): string {
  const who = c.deviceId === null ? `#${c.index}` : `${c.deviceId}#${String(c.seq)}`
  return c.ok ? `accepted  ${who}  ${String(c.sampleCount)} samples  record ${String(c.recordHash)}` : `REJECTED  ${who}  ${c.reason as string}: ${c.detail ?? ''}`
}

async function runAggregate (args: ParsedArgs, io: LineageCliIo): Promise<CommandFailure> {
  if (args.positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args.positional[0])}`)
  const basePath = need(args, 'base-model')
  const roundId = need(args, 'round')
  const contributionsPath = need(args, 'contributions')
  const name = need(args, 'name')
  const out = need(args, 'out')
  const statementPath = need(args, 'statement')
  const keyFile = stringFlag(args, 'key-file') ?? io.env[TRAINER_KEY_FILE_ENV]
  if (keyFile === undefined || keyFile === '') throw new UsageError(`--key-file (or $${TRAINER_KEY_FILE_ENV}) is required`)
  if (!/^[A-Za-z0-9][A-Za-z0-9._:-]{0,127}$/.test(roundId)) throw new UsageError('--round: letters, digits and ._:- (at most 128)')
  const baseModel = await readBounded(basePath, MODEL_MAX_BYTES)
  const contributions = parseContributions(await readBounded(contributionsPath, DEFAULT_CONTRIBUTIONS_MAX_BYTES))
  const signer = createSigner(await readSeedFile(keyFile))
  const keys = await deviceKeysFrom(args)
  let result
  try {
    result = await aggregateRound({ baseModel, roundId, contributions, keyAt: keys.lookup, signer, name })
  } finally { keys.close() }
  await write(out, result.model)
  await write(statementPath, JSON.stringify(result.envelope, null, 2) + '\n')
  const accepted = result.checks.filter(c => c.ok).length
  if (args.flags.has('json')) {
    io.stdout(JSON.stringify({ out, statement: statementPath, modelHash: result.modelHash, statementHash: result.statementHash, accepted, contributions: result.checks }, null, 2) + '\n')
  } else {
    io.stdout([...result.checks.map(contributionLine),
      `round ${roundId}: ${accepted} of ${result.checks.length} contributions, ${result.statement.predicate.totalSamples} samples -> ${out} (sha256 ${result.modelHash})`,
      `round statement ${result.statementHash} -> ${statementPath}`].join('\n') + '\n')
  }
  return undefined
}

async function runContributors (args: ParsedArgs, io: LineageCliIo): Promise<CommandFailure> {
  if (args.positional.length !== 1 || !/^[0-9a-f]{64}$/.test(args.positional[0] as string)) throw new UsageError('give the model hash (64 lower-case hex digits)')
  const modelHash = args.positional[0] as string
  const round = parseRound(await readBounded(need(args, 'statement'), DEFAULT_ENVELOPE_MAX_BYTES))
  const keysFlag = stringFlag(args, 'trainer-keys')
  const rpcUrl = stringFlag(args, 'rpc-url')
  if ((keysFlag === undefined) === (rpcUrl === undefined)) throw new UsageError('give --trainer-keys (offline) or --rpc-url with --lineage')
  const facts: RoundFacts = { trainerKeys: [], modelHash }
  if (keysFlag !== undefined) {
    const keys = keysFlag.split(',').filter(k => k !== '')
    if (keys.length === 0 || !keys.every(k => /^[0-9a-f]{64}$/.test(k))) throw new UsageError('--trainer-keys: 64 lower-case hex digits each')
    facts.trainerKeys = keys.map(k => new Uint8Array(Buffer.from(k, 'hex')))
  } else {
    const lineage = stringFlag(args, 'lineage')
    if (lineage === undefined || !/^0x[0-9a-fA-F]{40}$/.test(lineage)) throw new UsageError('--lineage must be a 0x-hex address')
    Object.assign(facts, await lineageRunFacts(rpcUrl as string, lineage, round.envelope.signatures.map(s => s.keyid), modelHash))
  }
  const contributionsPath = stringFlag(args, 'contributions')
  let close = (): void => {}
  if (contributionsPath !== undefined) {
    facts.contributions = parseContributions(await readBounded(contributionsPath, DEFAULT_CONTRIBUTIONS_MAX_BYTES))
    const keys = await deviceKeysFrom(args)
    facts.keyAt = keys.lookup
    close = keys.close
  }
  const modelPath = stringFlag(args, 'model')
  const basePath = stringFlag(args, 'base-model')
  if ((modelPath === undefined) !== (basePath === undefined)) throw new UsageError('--model and --base-model go together')
  if (modelPath !== undefined && basePath !== undefined) {
    facts.model = await readBounded(modelPath, MODEL_MAX_BYTES)
    facts.baseModel = await readBounded(basePath, MODEL_MAX_BYTES)
    facts.modelHash = createHash('sha256').update(facts.model).digest('hex')
    if (facts.modelHash !== modelHash) throw new UsageError(`--model is not the model ${modelHash.slice(0, 12)}… (its sha256 is ${facts.modelHash})`)
  }
  let result
  try { result = await checkRound(round, facts) } finally { close() }
  const failed = result.checks.filter(c => !c.ok)
  const p = round.statement.predicate
  if (args.flags.has('json')) {
    io.stdout(JSON.stringify({ ok: failed.length === 0, modelHash, roundId: p.roundId, statementHash: round.statementHash, totalSamples: p.totalSamples, contributors: p.contributions, checks: result.checks }, null, 2) + '\n')
  } else {
    const lines = [`model ${modelHash} from round ${p.roundId} (FedAvg of ${p.contributions.length} contributions, ${p.totalSamples} samples, base ${p.baseModel.digest.sha256.slice(0, 12)})`]
    for (const c of p.contributions) lines.push(`  ${c.deviceId}#${c.seq}  ${c.sampleCount} samples  weight ${(c.weight * 100).toFixed(1)}%  record ${c.recordHash}`)
    for (const c of result.checks) lines.push(c.ok ? `ok    ${c.check}` : `FAIL  ${c.check}  ${c.reason as string}: ${c.detail ?? ''}`)
    io.stdout(lines.join('\n') + '\n')
  }
  if (failed.length > 0) return { code: 'ROUND_INVALID', message: failed.map(c => c.reason).join(', ') }
  return undefined
}
