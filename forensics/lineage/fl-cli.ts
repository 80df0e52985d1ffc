/**
 * `provenance fl aggregate` and `provenance fl contributors`: a federated round's aggregation into a
 * new ONNX model with its signed round statement, and the fair attribution of a model to the devices
 * that contributed to it, each contribution re-checked (docs/LINEAGE.md §6).
 */
import { createHash } from 'node:crypto'
import { writeFile } from 'node:fs/promises'
import { createSigner } from '../../protocol/index.js'
import { ForensicsError } from '../errors.js'
import { parseArgs, stringFlag, UsageError, type FlagKind, type ParsedArgs } from '../cli/args.js'
import { deviceKeysFrom, readBounded, readSeedFile, TRAINER_KEY_FILE_ENV, type LineageCliIo } from './cli.js'
import { DEFAULT_ENVELOPE_MAX_BYTES } from './dsse.js'
import { lineageRunFacts } from './device-keys.js'
import {
  aggregateRound, checkRound, parseContributions, parseRound, DEFAULT_CONTRIBUTIONS_MAX_BYTES, FL_CONTRIBUTIONS_FORMAT,
  type ContributionCheck, type RoundFacts
} from './federated.js'

const MODEL_MAX_BYTES = 256 * 1024 * 1024

const USAGE: Record<string, string> = {
  aggregate: `usage: provenance fl aggregate --base-model FILE --round ID --contributions FILE --name NAME --key-file FILE
         (--device-keys LIST | --rpc-url URL --registry ADDRESS) --out MODEL.onnx --statement ROUND.json [--json]

Checks every contribution of the round (${FL_CONTRIBUTIONS_FORMAT}): its update is for this round and
base model, its data-capture record is signed by a registered, non-revoked device and commits to the
update. Averages the accepted ones by sample count (FedAvg) into a new ONNX model and signs a round
statement (DSSE, in-toto, predicate https://edge-provenance.dev/fl-round/v1) listing each by record hash
and weight. Rejected contributions are listed with their reason and never used.

  --base-model FILE       the round's starting model (logistic regression ONNX)
  --round ID              the round id (records' dataset is fl:ID)
  --contributions FILE    the devices' contributions
  --name NAME             the new model's name
  --key-file FILE         the aggregator's trainer seed (default: $${TRAINER_KEY_FILE_ENV})
  --device-keys LIST      ID=HEX64[:revoked],... device keys (offline)
  --rpc-url URL, --registry ADDRESS   read device keys from the ProvenanceRegistry
  --out FILE              the new model
  --statement FILE        the signed round statement (attach its hash as the model's training run)
  --json                  a JSON summary on stdout

Exit 0: a model was written. Exit 1: no contribution was accepted (FL_NO_ACCEPTED_CONTRIBUTION), or an error.
`,
  contributors: `usage: provenance fl contributors <modelHash> --statement ROUND.json (--trainer-keys HEX,... | --rpc-url URL --lineage ADDRESS)
         [--contributions FILE (--device-keys LIST | --registry ADDRESS)] [--model FILE --base-model FILE] [--json]

Lists the devices that contributed to the model, their sample counts and weights, and checks: the
statement is signed by a known trainer, names this model, is the training run the chain attaches to it
(online); with --contributions, each listed contribution is re-checked (device registered and not
revoked, signature, commitment); with --model and --base-model, FedAvg is recomputed.

  --statement FILE        the round statement (fl aggregate --statement)
  --trainer-keys HEX,...  trusted trainer keys (offline)
  --rpc-url URL           read trainer keys and the attached run from the LineageRegistry
  --lineage ADDRESS       its address
  --registry ADDRESS      the ProvenanceRegistry, for device keys (with --rpc-url)
  --device-keys LIST      ID=HEX64[:revoked],... device keys (offline)
  --contributions FILE    the round's contributions
  --model FILE, --base-model FILE   recompute the average
  --json                  the result as JSON on stdout

Exit 0: every check passed. Exit 1: one failed (ROUND_INVALID on stderr), or an error.
`
}

const SPECS: Record<string, Record<string, FlagKind>> = {
  aggregate: {
    'base-model': 'string', round: 'string', contributions: 'string', name: 'string', 'key-file': 'string', 'device-keys': 'string',
    'rpc-url': 'string', registry: 'string', out: 'string', statement: 'string', json: 'boolean', help: 'boolean'
  },
  contributors: {
    statement: 'string', 'trainer-keys': 'string', 'rpc-url': 'string', lineage: 'string', registry: 'string', 'device-keys': 'string',
    contributions: 'string', model: 'string', 'base-model': 'string', json: 'boolean', help: 'boolean'
  }
}

const GROUP_USAGE = 'usage: provenance fl <aggregate|contributors> [options]   (run "provenance fl <sub> --help")\n'

/** Runs `provenance fl …`; resolves to the exit code. Known errors propagate to forensics/cli.ts. */
export async function runFlCli (argv: readonly string[], io: LineageCliIo): Promise<number> {
  const [sub, ...rest] = argv
  if (sub === undefined || sub === '--help' || sub === '-h') {
    if (sub === undefined) { io.stderr.write(GROUP_USAGE); return 2 }
    io.stdout(GROUP_USAGE)
    return 0
  }
  const spec = SPECS[sub]
  if (spec === undefined) { io.stderr.write(`usage: unknown command "fl ${sub}"\n\n${GROUP_USAGE}`); return 2 }
  try {
    const args = parseArgs(rest, spec)
    if (args.flags.has('help')) { io.stdout(USAGE[sub] as string); return 0 }
    return sub === 'aggregate' ? await runAggregate(args, io) : await runContributors(args, io)
  } catch (e) {
    if (e instanceof UsageError) { io.stderr.write(`usage: ${e.message}\n\n${USAGE[sub] as string}`); return 2 }
    throw e
  }
}

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

async function runAggregate (args: ParsedArgs, io: LineageCliIo): Promise<number> {
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
  return 0
}

async function runContributors (args: ParsedArgs, io: LineageCliIo): Promise<number> {
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
  if (failed.length > 0) {
    io.stderr.write(`ROUND_INVALID: ${failed.map(c => c.reason).join(', ')}\n`)
    return 1
  }
  return 0
}
