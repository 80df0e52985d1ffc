/**
 * `provenance` described as data for the scaffold every bin shares (common/cli): its commands,
 * their options and the help written from them. The commands themselves are in commands.ts and
 * replay/cli.ts, the lineage groups `dataset`, `training`, `fl` in lineage/ (cli.ts, captures-cli.ts,
 * register.ts, fl-cli.ts).
 */
import type { CliCommandSpec, CliContext, CliOptionSpec, CliProgram, CliResult } from '../../common/index.js'
import pkg from '../../package.json' with { type: 'json' }
import { decodeBundle, decodeBundleRecord, decodeEnvelope } from '../../protocol/index.js'
import { CAPTURES_COMMANDS } from '../lineage/captures-cli.js'
import { DATASET_COMMANDS, TRAINING_COMMANDS, type LineageCommand } from '../lineage/cli.js'
import { FL_COMMANDS } from '../lineage/fl-cli.js'
import { REGISTER_COMMAND } from '../lineage/register.js'
import { replayCommand } from '../replay/cli.js'
import { UsageError } from '../../common/index.js'
import { argsOf, type ParsedArgs } from './args.js'
import { runCompliance, runExport, runReport, runTimeline, runTrace, runVerify, type CommandFailure } from './commands.js'
import { GATEWAY_TOKEN_ENV, RPC_URL_ENV, type CliIo } from './io.js'

/** The version `provenance --version` prints: the package's. */
export const FORENSICS_VERSION: string = pkg.version

const BUNDLE = { name: 'bundle.json', description: 'the incident bundle (provenance export)', required: true } as const
const QUIET: CliOptionSpec = { name: 'quiet', type: 'boolean', description: 'No progress on stderr.' }
const FROM: CliOptionSpec = { name: 'from', type: 'string', value: 'TIME', description: 'From this device time (Unix ms or ISO 8601).' }
const TO: CliOptionSpec = { name: 'to', type: 'string', value: 'TIME', description: 'Up to this device time.' }
const OUT_HTML: CliOptionSpec = { name: 'out', type: 'string', value: 'FILE', description: 'Write the HTML there (default: stdout).' }

const VERIFY_OPTIONS: readonly CliOptionSpec[] = [
  { name: 'offline', type: 'boolean', description: 'Judge against the bundle\'s own facts; no network call at all.' },
  { name: 'rpc-url', type: 'string', value: 'URL', description: `Judge against the chain (default: $${RPC_URL_ENV}); one of --offline and --rpc-url is required.` },
  { ...FROM, description: 'Judge records from this device time (Unix ms or ISO 8601).' },
  { ...TO, description: 'Judge records up to this device time; the chain is still checked from the first record.' },
  { name: 'allow-unanchored', type: 'boolean', description: 'Records not yet in an anchored batch are warnings, not failures.' },
  { name: 'max-findings', type: 'string', value: 'N', description: 'List at most N failures and N warnings (counts stay exact; default 1000).' },
  {
    name: 'verifier', type: 'string', value: 'node|noble',
    description: 'Ed25519 implementation: node (OpenSSL, every core; default) or noble (@noble/ed25519, independent of OpenSSL); both accept the same signatures.'
  },
  { name: 'workers', type: 'string', value: 'N', description: 'Worker threads that verify signatures beside this thread, which verifies too while it would wait (0: this thread alone; default one per core but one, at least one, from 4096 records).' }
]

/** A command's words, help and options: everything but how it runs. */
type CommandText = Omit<CliCommandSpec, 'run'>

const VERIFY: CommandText = {
  path: ['verify'],
  summary: 'verify a bundle: signatures, hash chain, keys, models, inclusion proofs',
  description: [
    'Verifies every record of the bundle: Ed25519 signature (see --verifier), hash chain and honest gaps, the key valid at its time, its model\'s registry status, and its inclusion proof against an anchored root and tree size taken from the facts (the bundle\'s offline, the chain\'s online). Give --offline or --rpc-url.',
    'Online it also judges completeness: the bundle\'s tip proof against the device\'s tip anchored on chain; a bundle that stops before it is INCOMPLETE, with the missing seqs named. Offline, completeness is not judged.',
    'Exit 0: valid. Exit 1: invalid (the failures are on stdout; VERDICT_INVALID with a summary on stderr), or an error.'
  ],
  positionals: [BUNDLE],
  options: [...VERIFY_OPTIONS, { name: 'json', type: 'boolean', description: 'The verdict as JSON on stdout.' }, QUIET]
}

const TIMELINE: CommandText = {
  path: ['timeline'],
  summary: 'what ran on the device between two times',
  description: ['What ran on the device: boots and reboots, model loads, inferences per model per interval, decisions, gaps, key rotations and shutdowns. Describes the records; run verify to judge them.'],
  positionals: [BUNDLE],
  options: [
    FROM, TO,
    { name: 'interval-ms', type: 'string', value: 'N', description: 'Bucket width for inference counts (default: a round width, ~48 buckets).' },
    { name: 'json', type: 'boolean', description: 'The timeline as JSON on stdout.' }
  ]
}

const EXPORT: CommandText = {
  path: ['export'],
  summary: 'export a bundle of a device from a gateway and the chain',
  description: [
    'Reads the device\'s records and inclusion proofs from the gateway\'s HTTP API and the registry\'s facts (key history, models, anchors) at one block, and writes a self-contained bundle.',
    'Required: --gateway, --rpc-url (or its variable), --registry, --device.'
  ],
  options: [
    { name: 'gateway', type: 'string', value: 'URL', description: 'Gateway HTTP API, e.g. http://127.0.0.1:8080.' },
    { name: 'token-file', type: 'string', value: 'FILE', description: `The gateway's API token (its <stateDir>/api-token; default: the token in $${GATEWAY_TOKEN_ENV}).` },
    { name: 'rpc-url', type: 'string', value: 'URL', description: `JSON-RPC endpoint (default: $${RPC_URL_ENV}).` },
    { name: 'registry', type: 'string', value: 'ADDRESS', description: 'Registry contract address.' },
    { name: 'device', type: 'string', value: 'ID', description: 'Device id.' },
    { ...FROM, description: 'Only records from this device time (Unix ms or ISO 8601).' },
    { ...TO, description: 'Only records up to this device time.' },
    { name: 'out', type: 'string', value: 'FILE', description: 'Write the bundle there (default: stdout).' },
    { name: 'concurrency', type: 'string', value: 'N', description: 'Proof requests in flight (default 8).' },
    { name: 'shreddings', type: 'string', value: 'DIR', description: 'Add the device\'s shredding statements (*.shredding, its <stateDir>/shreddings/).' },
    { name: 'json', type: 'boolean', description: 'With --out: a JSON summary on stdout.' },
    QUIET
  ]
}

const REPORT: CommandText = {
  path: ['report'],
  summary: 'verify and write a single-file HTML report',
  description: [
    'Verifies the bundle (as verify; give --offline or --rpc-url) and writes a single-file HTML report (no script, no external resource): verdict and failures, timeline chart, models, gaps, anchors, a few inclusion proofs.',
    'Exit 0: report written, verdict valid. Exit 1: report written, verdict invalid; or an error.'
  ],
  positionals: [BUNDLE],
  options: [
    ...VERIFY_OPTIONS,
    { name: 'interval-ms', type: 'string', value: 'N', description: 'Timeline bucket width.' },
    OUT_HTML,
    { name: 'json', type: 'boolean', description: 'With --out: the verdict as JSON on stdout.' },
    QUIET
  ]
}

const TRACE: CommandText = {
  path: ['trace'],
  summary: 'from one record back to its model, training run or round, datasets and contributors',
  description: [
    'Walks from one record of the bundle back to where its model came from, checking every link (docs/LINEAGE.md §7): the record and its model-load (signature, hash chain, inclusion proof, as verify), the model\'s registration, the training-run statement or federated round statement naming the model (signed by a known trainer, attached to the model on chain), the datasets it names (manifest digest, folder re-hashed, field captures) or the contributions it averages (registered, non-revoked devices, signatures, commitments). Prints the tree; a broken link names its reason. Give --record, and --offline or --rpc-url.',
    'Exit 0: every link verified. Exit 1: a link is broken (TRACE_BROKEN on stderr), or an error.'
  ],
  positionals: [BUNDLE],
  options: [
    ...VERIFY_OPTIONS,
    { name: 'record', type: 'string', value: 'DEVICE:SEQ', description: 'The record to trace (an inference or model-load record of the bundle\'s device).' },
    { name: 'statements', type: 'string', value: 'F1,F2', description: 'Training-run and round statement envelopes; the one naming the model is used.' },
    { name: 'trainer-keys', type: 'string', value: 'HEX,...', description: 'Trusted trainer keys (offline).' },
    { name: 'lineage', type: 'string', value: 'ADDRESS', description: 'With --rpc-url: trainer keys and the model\'s attached run from the LineageRegistry.' },
    { name: 'device-keys', type: 'string', value: 'LIST', description: 'ID=HEX64[:revoked],... keys of capturing and contributing devices (offline; online they come from the bundle\'s registry).' },
    { name: 'datasets', type: 'string', value: 'LIST', description: 'NAME=MANIFEST[=DIR],... dataset manifests, and folders to re-hash.' },
    { name: 'captures', type: 'string', value: 'LIST', description: 'NAME=CAPTURES.json,... field captures behind a dataset (their records\' inclusion proofs judged against the chain online, the bundle\'s anchors offline).' },
    { name: 'contributions', type: 'string', value: 'FILE', description: 'The round\'s contributions.' },
    { name: 'html', type: 'string', value: 'FILE', description: 'Also write the HTML report with the lineage diagram.' },
    { name: 'json', type: 'boolean', description: 'The trace as JSON on stdout.' },
    QUIET
  ]
}

const COMPLIANCE: CommandText = {
  path: ['compliance'],
  summary: 'the auditor\'s export of a fleet\'s period (EU AI Act): HTML and JSON',
  description: [
    'The auditor\'s export (profile eu-ai-act, docs/COMPLIANCE.md): verifies the bundles of the devices and reviewing stations of a fleet, maps their events of the period to Art. 12(2)(a)-(c) and 12(3), lists oversight actions (each checked across the bundles: the decision it names exists with that hash, and the station is a reviewer), use sessions with their reference database, model versions with registry and lineage entries, retention status, and says what it does not cover.',
    'Give the bundle files (with --offline or --rpc-url), or --gateway URL --registry ADDRESS --devices ID,ID --rpc-url URL to export them first.',
    'Exit 0: valid (every bundle valid, every oversight record accepted). Exit 1: invalid, or an error.'
  ],
  positionals: [{ name: 'bundle.json', description: 'the bundles of the fleet\'s devices and reviewing stations', variadic: true }],
  options: [
    { name: 'profile', type: 'string', value: 'eu-ai-act', description: 'The mapping used (the only one; default).' },
    {
      name: 'gateway', type: 'string', value: 'URL',
      description: 'Export the bundles of --devices from this gateway first (as provenance export, with --registry, --token-file and the period), then judge them.'
    },
    { name: 'devices', type: 'string', value: 'ID,ID', description: 'The devices and reviewing stations to export (with --gateway).' },
    { name: 'registry', type: 'string', value: 'ADDRESS', description: 'Registry contract address (with --gateway).' },
    { name: 'token-file', type: 'string', value: 'FILE', description: `The gateway's API token (with --gateway; default: the token in $${GATEWAY_TOKEN_ENV}).` },
    { name: 'bundles-dir', type: 'string', value: 'DIR', description: 'Also keep the exported bundles there, as <id>.bundle.json.' },
    VERIFY_OPTIONS[0] as CliOptionSpec,
    { name: 'rpc-url', type: 'string', value: 'URL', description: `Judge against the chain (default: $${RPC_URL_ENV}).` },
    { ...FROM, description: 'The period, in device time (Unix ms or ISO 8601), from ...' },
    { ...TO, description: '... up to this device time.' },
    {
      name: 'reviewers', type: 'string', value: 'ID,ID',
      description: 'Device ids of the reviewing stations; oversight records of any other station are rejected (oversight-reviewer-unknown). Without it, any station whose bundle verifies counts (online: registered in the registry).'
    },
    { name: 'retention-days', type: 'string', value: 'N', description: 'The gateway\'s configured retention, shown as reported; without it the report marks retention "not reported".' },
    { name: 'allow-unanchored', type: 'boolean', description: 'Records not yet anchored are warnings, not failures.' },
    { name: 'out', type: 'string', value: 'FILE', description: 'Write the HTML report there (default: stdout, unless --json-out).' },
    { name: 'json-out', type: 'string', value: 'FILE', description: 'Write the machine-readable report (JSON) there.' },
    { name: 'json', type: 'boolean', description: 'The JSON report on stdout instead of a summary (with --out) or of the HTML.' },
    QUIET
  ]
}

/** A command of commands.ts as the scaffold runs it: its failure (an invalid verdict) becomes exit 1 after its result. */
function command (io: CliIo, spec: Omit<CliCommandSpec, 'run'>, run: (args: ParsedArgs, io: CliIo) => Promise<CommandFailure>): CliCommandSpec {
  return {
    ...spec,
    run: async (ctx: CliContext): Promise<CliResult | undefined> => {
      const failure = await run(argsOf(ctx), io)
      return failure === undefined ? undefined : { value: undefined, failure }
    }
  }
}

/**
 * A lineage command as the scaffold runs it. An empty value (`--out ''`) is refused: these commands
 * always refused it, and a file named "" is never what was meant.
 */
function lineageCommand (io: CliIo, spec: LineageCommand): CliCommandSpec {
  const { runWith, ...text } = spec
  return command(io, text, async (args, io) => {
    for (const [name, value] of args.flags) if (value === '') throw new UsageError(`--${name} needs a value`)
    return await runWith(args, io)
  })
}

/** The program, its commands writing to `io`. */
export function forensicsProgram (io: CliIo): CliProgram {
  return {
    name: 'provenance',
    version: FORENSICS_VERSION,
    summary: 'The investigator\'s tools: export, verify, trace and replay what an edge device signed.',
    rejectRepeatedOptions: true,
    commands: [
      command(io, VERIFY, runVerify),
      command(io, TIMELINE, runTimeline),
      command(io, EXPORT, runExport),
      command(io, REPORT, runReport),
      command(io, TRACE, runTrace),
      command(io, COMPLIANCE, runCompliance),
      // Bundles are read here: replay itself does not depend on the bundle format.
      replayCommand(bytes => decodeBundle(bytes).records.map(r => decodeEnvelope(decodeBundleRecord(r)))),
      ...[...DATASET_COMMANDS, ...CAPTURES_COMMANDS, REGISTER_COMMAND, ...TRAINING_COMMANDS, ...FL_COMMANDS].map(c => lineageCommand(io, c))
    ],
    epilog: [
      'An invalid verdict (verify, report, compliance) or a broken trace exits 1 after printing its result, with VERDICT_INVALID or TRACE_BROKEN on stderr. Offline verification loads no chain code at all.'
    ]
  }
}
