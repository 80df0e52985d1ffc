/**
 * The investigator's command line: `provenance verify|timeline|export|report`, run as
 * `node --import tsx forensics/cli.ts <command> …`. Results on stdout (text, or JSON with --json),
 * progress and errors on stderr (`CODE: message`). Exit codes: 0 ok / valid verdict, 1 failure or
 * invalid verdict, 2 usage error. Offline verification loads no chain code at all: export and
 * online verification load it on demand.
 */
import { readFile, stat, writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { BUNDLE_LIMITS, DEVICE_ID_PATTERN, BundleError, ProvenanceError, decodeBundle, decodeBundleRecord, decodeEnvelope, encodeBundle, type Bundle } from '../protocol/index.js'
import { runReplayCli } from './replay/index.js'
import { runLineageCli } from './lineage/cli.js'
import { runFlCli } from './lineage/fl-cli.js'
import { ForensicsError } from './errors.js'
import pkg from '../package.json' with { type: 'json' }
import { intFlag, parseArgs, stringFlag, timeFlag, UsageError, type FlagKind, type ParsedArgs } from './cli/args.js'
import { createProgress, type ProgressStream } from './cli/progress.js'
import { buildTimeline, type Timeline } from './timeline/index.js'
import { renderReport } from './report/index.js'
import { REASON_DESCRIPTIONS, verifyBundle, type Verdict, type VerifyOptions } from './verify/index.js'

/** The version `provenance --version` prints: the package's. */
export const FORENSICS_VERSION: string = pkg.version

/** Environment variable read for the JSON-RPC URL when --rpc-url is not given. */
export const RPC_URL_ENV = 'PROVENANCE_RPC_URL'
/** Environment variable read for the gateway's API token when --token-file is not given (export only). */
export const GATEWAY_TOKEN_ENV = 'PROVENANCE_GATEWAY_TOKEN'

export interface CliIo {
  stdout: (text: string) => void
  stderr: ProgressStream
  env: Record<string, string | undefined>
}

const defaultIo: CliIo = {
  stdout: text => { process.stdout.write(text) },
  stderr: process.stderr,
  env: process.env
}

const MAIN_USAGE = `usage: provenance <command> [options]

Commands:
  verify <bundle.json>    verify a bundle: signatures, hash chain, keys, models, inclusion proofs
  timeline <bundle.json>  what ran on the device between two times
  export                  export a bundle of a device from a gateway and the chain
  report <bundle.json>    verify and write a single-file HTML report
  compliance <bundle.json>...  the auditor's export of a fleet's period (EU AI Act): HTML and JSON
  replay                  re-run an incident capture through the model and check its commitments
  trace <bundle.json>     from one record back to its model, training run or round, datasets and contributors
  dataset hash|verify|captures|register  OpenSSF model-signing manifests of dataset and model folders, field captures (docs/LINEAGE.md)
  training record|verify|diff  signed training-run statements (DSSE, in-toto) and their checks
  fl aggregate|contributors  federated rounds: FedAvg of device contributions, and who contributed to a model

Options: --help (on stdout), --version.
Run "provenance <command> --help" for the options of a command.
Exit codes: 0 ok (valid verdict), 1 failure or invalid verdict (CODE: message on stderr), 2 usage error.
`

const VERIFY_OPTIONS = `  --offline               judge against the bundle's own facts; no network call at all
  --rpc-url URL           judge against the chain (default: $${RPC_URL_ENV}); one of the two is required
  --from TIME             judge records from this device time (Unix ms or ISO 8601)
  --to TIME               ... up to this device time; the chain is still checked from the first record
  --allow-unanchored      records not yet in an anchored batch are warnings, not failures
  --max-findings N        list at most N failures and N warnings (counts stay exact; default 1000)
  --verifier node|noble   Ed25519 implementation: node (OpenSSL, every core; default) or noble
                          (@noble/ed25519, independent of OpenSSL); both accept the same signatures
  --workers N             threads that verify signatures (0: this thread; default one per core
                          from 4096 records)`

const USAGE: Record<string, string> = {
  verify: `usage: provenance verify <bundle.json> (--offline | --rpc-url URL) [options]

Verifies every record of the bundle: Ed25519 signature (see --verifier), hash chain and honest gaps,
the key valid at its time, its model's registry status, and its inclusion proof against an anchored
root and tree size taken from the facts (the bundle's offline, the chain's online).
Online it also judges completeness: the bundle's tip proof against the device's tip anchored on
chain; a bundle that stops before it is INCOMPLETE, with the missing seqs named. Offline,
completeness is not judged.

${VERIFY_OPTIONS}
  --json                  the verdict as JSON on stdout
  --quiet                 no progress on stderr

Exit 0: valid. Exit 1: invalid (the failures are on stdout; a summary on stderr), or an error.
`,
  timeline: `usage: provenance timeline <bundle.json> [options]

What ran on the device: boots and reboots, model loads, inferences per model per interval,
decisions, gaps, key rotations and shutdowns. Describes the records; run verify to judge them.

  --from TIME             from this device time (Unix ms or ISO 8601)
  --to TIME               up to this device time
  --interval-ms N         bucket width for inference counts (default: a round width, ~48 buckets)
  --json                  the timeline as JSON on stdout
`,
  export: `usage: provenance export --gateway URL --rpc-url URL --registry ADDRESS --device ID [options]

Reads the device's records and inclusion proofs from the gateway's HTTP API and the registry's facts
(key history, models, anchors) at one block, and writes a self-contained bundle.

  --gateway URL           gateway HTTP API, e.g. http://127.0.0.1:8080
  --token-file FILE       the gateway's API token (its <stateDir>/api-token; default: $${GATEWAY_TOKEN_ENV})
  --rpc-url URL           JSON-RPC endpoint (default: $${RPC_URL_ENV})
  --registry ADDRESS      registry contract address
  --device ID             device id
  --from TIME, --to TIME  only records in this device-time window (Unix ms or ISO 8601)
  --out FILE              write the bundle there (default: stdout)
  --concurrency N         proof requests in flight (default 8)
  --shreddings DIR        add the device's shredding statements (*.shredding, its <stateDir>/shreddings/)
  --json                  with --out: a JSON summary on stdout
  --quiet                 no progress on stderr
`,
  report: `usage: provenance report <bundle.json> (--offline | --rpc-url URL) [options]

Verifies the bundle and writes a single-file HTML report (no script, no external resource):
verdict and failures, timeline chart, models, gaps, anchors, a few inclusion proofs.

${VERIFY_OPTIONS}
  --interval-ms N         timeline bucket width
  --out FILE              write the HTML there (default: stdout)
  --json                  with --out: the verdict as JSON on stdout
  --quiet                 no progress on stderr

Exit 0: report written, verdict valid. Exit 1: report written, verdict invalid; or an error.
`,
  trace: `usage: provenance trace <bundle.json> --record DEVICE:SEQ (--offline | --rpc-url URL) [options]

Walks from one record of the bundle back to where its model came from, checking every link
(docs/LINEAGE.md §7): the record and its model-load (signature, hash chain, inclusion proof, as
verify), the model's registration, the training-run statement or federated round statement naming
the model (signed by a known trainer, attached to the model on chain), the datasets it names
(manifest digest, folder re-hashed, field captures) or the contributions it averages (registered,
non-revoked devices, signatures, commitments). Prints the tree; a broken link names its reason.

${VERIFY_OPTIONS}
  --record DEVICE:SEQ     the record to trace (an inference or model-load record of the bundle's device)
  --statements F1,F2      training-run and round statement envelopes; the one naming the model is used
  --trainer-keys HEX,...  trusted trainer keys (offline)
  --lineage ADDRESS       with --rpc-url: trainer keys and the model's attached run from the LineageRegistry
  --device-keys LIST      ID=HEX64[:revoked],... keys of capturing and contributing devices (offline;
                          online they come from the bundle's registry)
  --datasets LIST         NAME=MANIFEST[=DIR],... dataset manifests, and folders to re-hash
  --captures LIST         NAME=CAPTURES.json,... field captures behind a dataset
  --contributions FILE    the round's contributions
  --html FILE             also write the HTML report with the lineage diagram
  --json                  the trace as JSON on stdout
  --quiet                 no progress on stderr

Exit 0: every link verified. Exit 1: a link is broken (TRACE_BROKEN on stderr), or an error.
`
}

USAGE.compliance = `usage: provenance compliance <bundle.json>... (--offline | --rpc-url URL) [options]
       provenance compliance --gateway URL --registry ADDRESS --devices ID,ID --rpc-url URL [options]

The auditor's export (profile eu-ai-act, docs/COMPLIANCE.md): verifies the bundles of the devices
and reviewing stations of a fleet, maps their events of the period to Art. 12(2)(a)-(c) and 12(3),
lists oversight actions (each checked across the bundles: the decision it names exists with that
hash, and the station is a reviewer), use sessions with their reference database, model versions
with registry and lineage entries, retention status, and says what it does not cover.

  --profile eu-ai-act     the mapping used (the only one; default)
  --gateway URL           export the bundles of --devices from this gateway first (as provenance
                          export, with --registry, --token-file and the period), then judge them
  --devices ID,ID         the devices and reviewing stations to export (with --gateway)
  --bundles-dir DIR       also keep the exported bundles there, as <id>.bundle.json
  --offline               judge against the bundles' own facts; no network call at all
  --rpc-url URL           judge against the chain (default: $${RPC_URL_ENV})
  --from TIME, --to TIME  the period, in device time (Unix ms or ISO 8601)
  --reviewers ID,ID       device ids of the reviewing stations; oversight records of any other
                          station are rejected (oversight-reviewer-unknown). Without it, any
                          station whose bundle verifies counts (online: registered in the registry)
  --retention-days N      the gateway's configured retention, shown as reported; without it the
                          report marks retention "not reported"
  --allow-unanchored      records not yet anchored are warnings, not failures
  --out FILE              write the HTML report there (default: stdout, unless --json-out)
  --json-out FILE         write the machine-readable report (JSON) there
  --json                  the JSON report on stdout instead of a summary (with --out)
  --quiet                 no progress on stderr

Exit 0: valid (every bundle valid, every oversight record accepted). Exit 1: invalid, or an error.
`

const VERIFY_FLAGS: Record<string, FlagKind> = {
  offline: 'boolean', 'rpc-url': 'string', from: 'string', to: 'string', 'allow-unanchored': 'boolean', 'max-findings': 'string',
  verifier: 'string', workers: 'string', json: 'boolean', quiet: 'boolean', help: 'boolean'
}
const SPECS: Record<string, Record<string, FlagKind>> = {
  verify: VERIFY_FLAGS,
  timeline: { from: 'string', to: 'string', 'interval-ms': 'string', json: 'boolean', help: 'boolean' },
  export: {
    gateway: 'string', 'token-file': 'string', 'rpc-url': 'string', registry: 'string', device: 'string', from: 'string', to: 'string', out: 'string',
    concurrency: 'string', shreddings: 'string', json: 'boolean', quiet: 'boolean', help: 'boolean'
  },
  report: { ...VERIFY_FLAGS, 'interval-ms': 'string', out: 'string' },
  trace: {
    ...VERIFY_FLAGS, record: 'string', statements: 'string', 'trainer-keys': 'string', lineage: 'string', 'device-keys': 'string', datasets: 'string',
    captures: 'string', contributions: 'string', html: 'string'
  },
  compliance: {
    profile: 'string', offline: 'boolean', 'rpc-url': 'string', gateway: 'string', 'token-file': 'string', registry: 'string', devices: 'string', 'bundles-dir': 'string', from: 'string', to: 'string', reviewers: 'string', 'retention-days': 'string',
    'allow-unanchored': 'boolean', out: 'string', 'json-out': 'string', json: 'boolean', quiet: 'boolean', help: 'boolean'
  }
}

/**
 * Runs one CLI invocation; resolves to the exit code. Never throws: errors are printed.
 */
export async function runCli (argv: readonly string[], io: CliIo = defaultIo): Promise<number> {
  const [command, ...rest] = argv
  const err = (text: string): void => { io.stderr.write(text) }
  // --version and the `usage:` prefix as every bin has them (common/cli); the parser is node:util's.
  if (command === '--version') { io.stdout(`${FORENSICS_VERSION}\n`); return 0 }
  if (command === undefined || command === '--help' || command === '-h' || command === 'help') {
    if (command === undefined) { err(MAIN_USAGE); return 2 }
    io.stdout(MAIN_USAGE)
    return 0
  }
  if (command === 'replay') {
    // Replay has its own parser and help (forensics/replay/cli.ts); bundles are read here.
    return await runReplayCli(rest, {
      stdout: { write: (text: string) => { io.stdout(text) } },
      stderr: io.stderr,
      readBundle: (bytes) => decodeBundle(bytes).records.map(r => decodeEnvelope(decodeBundleRecord(r)))
    })
  }
  const spec = SPECS[command]
  if (command === 'dataset' || command === 'training' || command === 'fl') {
    try {
      return command === 'fl' ? await runFlCli(rest, io) : await runLineageCli(command, rest, io)
    } catch (e) {
      if (e instanceof ProvenanceError) { err(`${e.code}: ${e.message}\n`); return 1 }
      err(`INTERNAL: ${(e as Error)?.stack ?? String(e)}\n`)
      return 1
    }
  }
  if (spec === undefined) { err(`usage: unknown command "${command}"\n\n${MAIN_USAGE}`); return 2 }
  try {
    const args = parseArgs(rest, spec)
    if (args.flags.has('help')) { io.stdout(USAGE[command] as string); return 0 }
    switch (command) {
      case 'verify': return await runVerify(args, io)
      case 'timeline': return await runTimeline(args, io)
      case 'export': return await runExport(args, io)
      case 'trace': return await runTrace(args, io)
      case 'compliance': return await runCompliance(args, io)
      default: return await runReport(args, io)
    }
  } catch (e) {
    if (e instanceof UsageError) {
      err(`usage: ${e.message}\n\n${USAGE[command] as string}`)
      return 2
    }
    if (e instanceof ProvenanceError) {
      err(`${e.code}: ${e.message}\n`)
      return 1
    }
    err(`INTERNAL: ${(e as Error)?.stack ?? String(e)}\n`)
    return 1
  }
}

function onePath (args: ParsedArgs): string {
  if (args.positional.length !== 1) throw new UsageError(args.positional.length === 0 ? 'give the bundle file' : 'give exactly one bundle file')
  return args.positional[0] as string
}

/** The bundle file: size checked before reading it. */
async function readBundleFile (path: string): Promise<Bundle> {
  let size: number
  try {
    const s = await stat(path)
    if (!s.isFile()) throw new ForensicsError('IO_FAILED', `${path} is not a file`)
    size = s.size
  } catch (e) {
    if (e instanceof ForensicsError) throw e
    throw new ForensicsError('IO_FAILED', `cannot read ${path}: ${(e as Error).message}`, { cause: e })
  }
  if (size > BUNDLE_LIMITS.bundleBytes) throw new BundleError('BUNDLE_TOO_LARGE', `${path} has ${size} bytes, at most ${BUNDLE_LIMITS.bundleBytes}`)
  let bytes: Uint8Array
  try {
    bytes = await readFile(path)
  } catch (e) {
    throw new ForensicsError('IO_FAILED', `cannot read ${path}: ${(e as Error).message}`, { cause: e })
  }
  return decodeBundle(bytes)
}

async function writeOut (path: string, text: string): Promise<void> {
  try {
    await writeFile(path, text)
  } catch (e) {
    throw new ForensicsError('IO_FAILED', `cannot write ${path}: ${(e as Error).message}`, { cause: e })
  }
}

function verifyOptions (args: ParsedArgs, io: CliIo): VerifyOptions {
  const offline = args.flags.has('offline')
  const flagUrl = stringFlag(args, 'rpc-url')
  if (offline && flagUrl !== undefined) throw new UsageError('--offline and --rpc-url exclude each other')
  const rpcUrl = offline ? undefined : flagUrl ?? io.env[RPC_URL_ENV]
  if (!offline && (rpcUrl === undefined || rpcUrl === '')) throw new UsageError(`give --offline, or --rpc-url (or $${RPC_URL_ENV}) to verify against the chain`)
  const fromMs = timeFlag(args, 'from')
  const toMs = timeFlag(args, 'to')
  if (fromMs !== undefined && toMs !== undefined && toMs < fromMs) throw new UsageError('--to is before --from')
  const maxFindings = intFlag(args, 'max-findings')
  const verifier = stringFlag(args, 'verifier')
  if (verifier !== undefined && verifier !== 'node' && verifier !== 'noble') throw new UsageError('--verifier is node or noble')
  // 0 is a value here (verify on this thread), which intFlag refuses.
  const workersText = stringFlag(args, 'workers')
  const workers = workersText === '0' ? 0 : intFlag(args, 'workers')
  const progress = createProgress(io.stderr, { label: 'verify' }, !args.flags.has('quiet'))
  return {
    ...(verifier === undefined ? {} : { verifier }),
    ...(workers === undefined ? {} : { workers }),
    ...(offline ? { offline: true } : { rpcUrl }),
    ...(fromMs === undefined ? {} : { fromMs }),
    ...(toMs === undefined ? {} : { toMs }),
    ...(maxFindings === undefined ? {} : { maxFindings }),
    allowUnanchored: args.flags.has('allow-unanchored'),
    onProgress: p => {
      progress.update(p.phase, p.done, p.total)
      if (p.phase === 'records' && p.done === p.total) progress.finish()
    }
  }
}

function invalidSummary (v: Verdict): string {
  const first = v.failures[0]
  const at = first === undefined ? '' : `; first: ${first.seq === undefined ? 'bundle' : `seq ${first.seq}`} ${first.reason}`
  return `VERDICT_INVALID: ${v.counts.failures} failure(s) on ${v.counts.recordsFailed} record(s)${at}\n`
}

async function runVerify (args: ParsedArgs, io: CliIo): Promise<number> {
  const path = onePath(args)
  const options = verifyOptions(args, io)
  const bundle = await readBundleFile(path)
  const verdict = await verifyBundle(bundle, options)
  io.stdout(args.flags.has('json') ? JSON.stringify(verdict, null, 2) + '\n' : formatVerdict(verdict))
  if (verdict.verdict === 'invalid') { io.stderr.write(invalidSummary(verdict)); return 1 }
  return 0
}

async function runTimeline (args: ParsedArgs, io: CliIo): Promise<number> {
  const path = onePath(args)
  const fromMs = timeFlag(args, 'from')
  const toMs = timeFlag(args, 'to')
  if (fromMs !== undefined && toMs !== undefined && toMs < fromMs) throw new UsageError('--to is before --from')
  const intervalMs = intFlag(args, 'interval-ms')
  const bundle = await readBundleFile(path)
  let timeline: Timeline
  try {
    timeline = buildTimeline(bundle, { ...(fromMs === undefined ? {} : { fromMs }), ...(toMs === undefined ? {} : { toMs }), ...(intervalMs === undefined ? {} : { intervalMs }) })
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message)
    throw e
  }
  io.stdout(args.flags.has('json') ? JSON.stringify(timeline, null, 2) + '\n' : formatTimeline(timeline))
  return 0
}

/** The token from --token-file, else from the environment; the file's content is never echoed. */
async function readGatewayToken (file: string | undefined, fromEnv: string | undefined): Promise<string | undefined> {
  if (file === undefined) return fromEnv === undefined || fromEnv === '' ? undefined : fromEnv.trim()
  let text: string
  try {
    text = await readFile(file, 'utf8')
  } catch (e) {
    throw new UsageError(`cannot read --token-file ${file}: ${(e as NodeJS.ErrnoException).code ?? 'error'}`)
  }
  const token = text.trim()
  if (!/^[\x21-\x7e]{1,4096}$/.test(token)) throw new UsageError(`--token-file ${file} does not hold a token (one line of printable characters)`)
  return token
}

/** The `*.shredding` files of a folder (the device's `<stateDir>/shreddings/`), name order. Verify judges them. */
async function readShreddings (dir: string | undefined): Promise<Uint8Array[]> {
  if (dir === undefined) return []
  const { readdir, readFile } = await import('node:fs/promises')
  let names: string[]
  try {
    names = (await readdir(dir)).filter(n => n.endsWith('.shredding')).sort()
  } catch (e) {
    throw new UsageError(`--shreddings: cannot read folder ${dir}: ${(e as Error).message}`)
  }
  const out: Uint8Array[] = []
  for (const n of names) {
    const bytes = await readFile(`${dir}/${n}`)
    if (bytes.byteLength > 64 * 1024) throw new UsageError(`--shreddings: ${n} is larger than a statement (64 KiB)`)
    out.push(new Uint8Array(bytes))
  }
  return out
}

async function runExport (args: ParsedArgs, io: CliIo): Promise<number> {
  if (args.positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args.positional[0])}`)
  const need = (name: string): string => {
    const v = stringFlag(args, name) ?? (name === 'rpc-url' ? io.env[RPC_URL_ENV] : undefined)
    if (v === undefined || v === '') throw new UsageError(`--${name} is required`)
    return v
  }
  const gatewayUrl = need('gateway')
  const rpcUrl = need('rpc-url')
  const registry = need('registry')
  const deviceId = need('device')
  if (!/^0x[0-9a-fA-F]{40}$/.test(registry)) throw new UsageError('--registry must be a 0x-hex address')
  const fromMs = timeFlag(args, 'from')
  const toMs = timeFlag(args, 'to')
  if (fromMs !== undefined && toMs !== undefined && toMs < fromMs) throw new UsageError('--to is before --from')
  const concurrency = intFlag(args, 'concurrency')
  const out = stringFlag(args, 'out')
  const gatewayToken = await readGatewayToken(stringFlag(args, 'token-file'), io.env[GATEWAY_TOKEN_ENV])
  const shreddings = await readShreddings(stringFlag(args, 'shreddings'))
  const progress = createProgress(io.stderr, { label: 'export' }, !args.flags.has('quiet'))
  // Loaded here only: the chain client is not needed by the other commands.
  const { exportBundle } = await import('./export/index.js')
  let bundle: Bundle
  try {
    bundle = await exportBundle({
      gatewayUrl, rpcUrl, registry, deviceId,
      ...(gatewayToken === undefined ? {} : { gatewayToken }),
      ...(fromMs === undefined ? {} : { fromMs }),
      ...(toMs === undefined ? {} : { toMs }),
      ...(concurrency === undefined ? {} : { concurrency }),
      ...(shreddings.length === 0 ? {} : { shreddings }),
      onProgress: p => progress.update(p.phase, p.done, p.total)
    })
  } catch (e) {
    if (e instanceof TypeError) throw new UsageError(e.message)
    throw e
  } finally {
    progress.finish()
  }
  const text = encodeBundle(bundle)
  if (out === undefined) { io.stdout(text); return 0 }
  await writeOut(out, text)
  const summary = {
    out, device: bundle.device.id, records: bundle.records.length, proofs: bundle.proofs.length, anchors: bundle.anchors.length,
    models: bundle.models.length, readAtBlock: bundle.chain.readAtBlock, bytes: Buffer.byteLength(text)
  }
  io.stdout(args.flags.has('json')
    ? JSON.stringify(summary, null, 2) + '\n'
    : `exported ${summary.records} records of ${summary.device} (${summary.proofs} proofs, ${summary.anchors} anchors, ${summary.models} models, facts at block ${summary.readAtBlock}) to ${out}, ${summary.bytes} bytes\n`)
  return 0
}

async function runReport (args: ParsedArgs, io: CliIo): Promise<number> {
  const path = onePath(args)
  const options = verifyOptions(args, io)
  const intervalMs = intFlag(args, 'interval-ms')
  const out = stringFlag(args, 'out')
  const bundle = await readBundleFile(path)
  const verdict = await verifyBundle(bundle, options)
  let timeline: Timeline
  try {
    timeline = buildTimeline(bundle, {
      ...(options.fromMs === undefined ? {} : { fromMs: options.fromMs }),
      ...(options.toMs === undefined ? {} : { toMs: options.toMs }),
      ...(intervalMs === undefined ? {} : { intervalMs })
    })
  } catch (e) {
    if (e instanceof RangeError) throw new UsageError(e.message)
    throw e
  }
  const page = renderReport({ bundle, verdict, timeline })
  if (out === undefined) {
    io.stdout(page)
  } else {
    await writeOut(out, page)
    io.stdout(args.flags.has('json') ? JSON.stringify(verdict, null, 2) + '\n' : `report written to ${out}: ${verdict.verdict}\n`)
  }
  if (verdict.verdict === 'invalid') { io.stderr.write(invalidSummary(verdict)); return 1 }
  return 0
}

async function runTrace (args: ParsedArgs, io: CliIo): Promise<number> {
  const path = onePath(args)
  const options = verifyOptions(args, io)
  const recordArg = stringFlag(args, 'record')
  const m = recordArg === undefined ? null : /^(.+):(\d{1,15})$/.exec(recordArg)
  if (m === null) throw new UsageError('--record DEVICE:SEQ is required')
  const bundle = await readBundleFile(path)
  if (m[1] !== bundle.device.id) throw new UsageError(`the bundle is of device ${bundle.device.id}, not ${m[1] as string}`)
  const { parseDeviceKeyList, registryDeviceKeys, lineageRunFacts } = await import('./lineage/device-keys.js')
  const { readBounded } = await import('./lineage/cli.js')
  const { parseCaptures, DEFAULT_CAPTURES_MAX_BYTES } = await import('./lineage/captures.js')
  const { parseContributions, DEFAULT_CONTRIBUTIONS_MAX_BYTES } = await import('./lineage/federated.js')
  const { traceRecord, formatTrace } = await import('./lineage/trace.js')
  const list = (name: string): string[] => (stringFlag(args, name) ?? '').split(',').map(x => x.trim()).filter(x => x !== '')
  const statements = await Promise.all(list('statements').map(async f => await readBounded(f, 16 * 1024 * 1024)))
  const captures = new Map<string, Uint8Array>()
  for (const item of list('captures')) {
    const eq = item.indexOf('=')
    if (eq < 1) throw new UsageError(`--captures: expected NAME=FILE, got ${JSON.stringify(item)}`)
    captures.set(item.slice(0, eq), await readBounded(item.slice(eq + 1), DEFAULT_CAPTURES_MAX_BYTES))
  }
  const datasets = []
  for (const item of list('datasets')) {
    const [name, manifest, dir, ...extra] = item.split('=')
    if (name === undefined || name === '' || manifest === undefined || manifest === '' || extra.length > 0) throw new UsageError(`--datasets: expected NAME=MANIFEST[=DIR], got ${JSON.stringify(item)}`)
    const c = captures.get(name)
    datasets.push({ name, manifest: await readBounded(manifest, 256 * 1024 * 1024), ...(dir === undefined ? {} : { dir }), ...(c === undefined ? {} : { captures: parseCaptures(c) }) })
  }
  const contributionsPath = stringFlag(args, 'contributions')
  const contributions = contributionsPath === undefined ? undefined : parseContributions(await readBounded(contributionsPath, DEFAULT_CONTRIBUTIONS_MAX_BYTES))
  const keysFlag = stringFlag(args, 'trainer-keys')
  const lineage = stringFlag(args, 'lineage')
  const trainerKeys = keysFlag === undefined ? [] : keysFlag.split(',').map(k => {
    if (!/^[0-9a-f]{64}$/.test(k)) throw new UsageError('--trainer-keys: 64 lower-case hex digits each')
    return new Uint8Array(Buffer.from(k, 'hex'))
  })
  if (lineage !== undefined && options.rpcUrl === undefined) throw new UsageError('--lineage needs --rpc-url')
  if (lineage !== undefined && !/^0x[0-9a-fA-F]{40}$/.test(lineage)) throw new UsageError('--lineage must be a 0x-hex address')
  const deviceKeys = stringFlag(args, 'device-keys')
  let keyAt
  let close = (): void => {}
  if (deviceKeys !== undefined) {
    try { keyAt = parseDeviceKeyList(deviceKeys) } catch (e) { throw new UsageError((e as Error).message) }
  } else if (options.rpcUrl !== undefined) {
    const keys = await registryDeviceKeys(options.rpcUrl, bundle.chain.registry)
    keyAt = keys.lookup
    close = keys.close
  }
  let trace
  try {
    trace = await traceRecord({
      bundle, seq: Number(m[2]), verify: options, statements, trainerKeys, datasets,
      ...(contributions === undefined ? {} : { contributions }),
      ...(keyAt === undefined ? {} : { keyAt }),
      ...(lineage === undefined ? {} : { lineageFacts: async (keyIds: string[], modelHash: string) => await lineageRunFacts(options.rpcUrl as string, lineage, keyIds, modelHash) })
    })
  } finally { close() }
  const htmlOut = stringFlag(args, 'html')
  if (htmlOut !== undefined) {
    const verdict = await verifyBundle(bundle, options)
    await writeOut(htmlOut, renderReport({ bundle, verdict, timeline: buildTimeline(bundle), lineage: trace }))
  }
  io.stdout(args.flags.has('json') ? JSON.stringify(trace, null, 2) + '\n' : formatTrace(trace))
  if (!trace.ok) { io.stderr.write(`TRACE_BROKEN: ${trace.broken.join('; ')}\n`); return 1 }
  return 0
}

async function runCompliance (args: ParsedArgs, io: CliIo): Promise<number> {
  const fromGateway = stringFlag(args, 'gateway') !== undefined
  if (fromGateway && args.positional.length > 0) throw new UsageError('give bundle files, or --gateway with --devices, not both')
  if (!fromGateway && args.positional.length === 0) throw new UsageError('give the bundle files of the fleet\'s devices and reviewing stations, or --gateway with --devices')
  const profile = stringFlag(args, 'profile') ?? 'eu-ai-act'
  if (profile !== 'eu-ai-act') throw new UsageError(`--profile ${JSON.stringify(profile)} is unknown: the only profile is eu-ai-act`)
  const v = verifyOptions(args, io)
  const reviewersFlag = stringFlag(args, 'reviewers')
  const reviewers = reviewersFlag?.split(',').map(r => r.trim()).filter(r => r !== '')
  if (reviewers !== undefined && reviewers.some(r => !DEVICE_ID_PATTERN.test(r))) throw new UsageError('--reviewers is a comma-separated list of device ids')
  const days = intFlag(args, 'retention-days')
  const out = stringFlag(args, 'out')
  const jsonOut = stringFlag(args, 'json-out')
  const bundles: Bundle[] = []
  if (fromGateway) bundles.push(...await exportFleet(args, io, v))
  for (const path of args.positional) bundles.push(await readBundleFile(path))
  const { buildCompliance, renderCompliance } = await import('./compliance/index.js')
  let report
  try {
    report = await buildCompliance(bundles, {
      ...(v.offline === true ? { offline: true } : { rpcUrl: v.rpcUrl as string }),
      ...(v.fromMs === undefined ? {} : { fromMs: v.fromMs }),
      ...(v.toMs === undefined ? {} : { toMs: v.toMs }),
      ...(reviewers === undefined ? {} : { reviewers }),
      ...(days === undefined ? {} : { retentionMs: days * 86_400_000 }),
      allowUnanchored: v.allowUnanchored ?? false
    })
  } catch (e) {
    if (e instanceof TypeError) throw new UsageError(e.message)
    throw e
  }
  const json = JSON.stringify(report, null, 2) + '\n'
  if (jsonOut !== undefined) await writeOut(jsonOut, json)
  const page = renderCompliance(report)
  if (out !== undefined) await writeOut(out, page)
  if (out === undefined && jsonOut === undefined) io.stdout(args.flags.has('json') ? json : page)
  else if (args.flags.has('json')) io.stdout(json)
  else {
    const rejected = report.oversight.filter(o => o.status !== 'accepted').length
    io.stdout(`${report.verdict.toUpperCase()}  ${report.devices.length} bundle(s), ${report.oversight.length} oversight action(s) (${rejected} rejected), ${report.sessions.length} use session(s)` +
      `${out === undefined ? '' : `; report ${out}`}${jsonOut === undefined ? '' : `; JSON ${jsonOut}`}\n`)
  }
  if (report.verdict === 'invalid') {
    const first = report.findings.find(f => f.severity === 'failure')
    const bad = report.devices.find(d => d.verdict.verdict === 'invalid')
    io.stderr.write(`VERDICT_INVALID: ${first !== undefined ? `${first.reason}: ${first.message}` : `device ${String(bad?.device)}: ${String(bad?.verdict.failures[0]?.reason)}`}\n`)
    return 1
  }
  return 0
}

/** The bundles of --devices exported from --gateway (as `provenance export`), saved in --bundles-dir when given. */
async function exportFleet (args: ParsedArgs, io: CliIo, v: VerifyOptions): Promise<Bundle[]> {
  if (v.rpcUrl === undefined) throw new UsageError('--gateway needs --rpc-url (the export reads the registry), not --offline')
  const gatewayUrl = stringFlag(args, 'gateway') as string
  const registry = stringFlag(args, 'registry')
  if (registry === undefined || !/^0x[0-9a-fA-F]{40}$/.test(registry)) throw new UsageError('--gateway needs --registry, a 0x-hex address')
  const devices = (stringFlag(args, 'devices') ?? '').split(',').map(d => d.trim()).filter(d => d !== '')
  if (devices.length === 0 || devices.some(d => !DEVICE_ID_PATTERN.test(d))) throw new UsageError('--gateway needs --devices, a comma-separated list of device ids')
  const dir = stringFlag(args, 'bundles-dir')
  const gatewayToken = await readGatewayToken(stringFlag(args, 'token-file'), io.env[GATEWAY_TOKEN_ENV])
  const { exportBundle } = await import('./export/index.js')
  const out: Bundle[] = []
  for (const deviceId of devices) {
    const progress = createProgress(io.stderr, { label: `export ${deviceId}` }, !args.flags.has('quiet'))
    try {
      out.push(await exportBundle({
        gatewayUrl, rpcUrl: v.rpcUrl, registry, deviceId,
        ...(gatewayToken === undefined ? {} : { gatewayToken }),
        ...(v.fromMs === undefined ? {} : { fromMs: v.fromMs }),
        ...(v.toMs === undefined ? {} : { toMs: v.toMs }),
        onProgress: p => progress.update(p.phase, p.done, p.total)
      }))
    } catch (e) {
      if (e instanceof TypeError) throw new UsageError(e.message)
      throw e
    } finally {
      progress.finish()
    }
    if (dir !== undefined) await writeOut(resolve(dir, `${deviceId}.bundle.json`), encodeBundle(out.at(-1) as Bundle))
  }
  return out
}

// ---------------------------------------------------------------------------------------------
// Text output

function iso (ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString()
}

/** The verdict as text for a terminal. */
export function formatVerdict (v: Verdict): string {
  const c = v.counts
  const lines = [
    `${v.verdict.toUpperCase()}${v.completeness.status === 'incomplete' ? ' (INCOMPLETE)' : ''}  device ${v.device}  ${v.mode === 'online' ? `online, chain ${v.chain.chainId} at block ${String(v.chain.checkedAtBlock)}` : `offline, bundle facts at block ${v.chain.readAtBlock}`}`,
    `records   ${c.judged} judged of ${c.records}${v.window.fromMs !== null || v.window.toMs !== null ? ` (window ${iso(v.window.fromMs)} .. ${iso(v.window.toMs)})` : ''}, seq ${String(v.firstSeq)}..${String(v.lastSeq)}${v.fromGenesis ? ' from genesis' : v.prunedFromGenesis ? ' from genesis (earlier seqs pruned by policy)' : ''}`,
    `signature ${c.signaturesValid}/${c.signaturesChecked} valid (${v.verifier === 'noble' ? '@noble/ed25519' : 'node:crypto'})`,
    `chain     ${c.chainLinked} linked, ${v.gaps.length} honest gap(s)${v.gaps.map(g => ` [${g.firstSeq}..${g.lastSeq} ${g.reason}]`).join('')}`,
    `proofs    ${c.proofsValid}/${c.proofsChecked} valid in ${c.anchors} anchored batch(es); ${c.models} model(s)`,
    `complete  ${v.completeness.status}${v.completeness.missing === undefined ? '' : ` (missing seq ${v.completeness.missing.fromSeq}..${v.completeness.missing.toSeq})`}: ${v.completeness.message}`,
    // Removal by policy, not loss (PROTOCOL.md §12): named with the statement that did it.
    ...v.pruned.map(p => `PRUNED    seq ${p.firstSeq}..${p.lastSeq} by statement ${p.statement} (gateway ${p.gatewayId}, ${p.reason}, retention ${p.retentionDays} days, ${iso(p.prunedAtMs)}${p.committed ? ', anchored' : ', not yet anchored'})`),
    ...v.shredded.map(x => `SHREDDED  seq ${x.firstSeq}..${x.lastSeq} (${x.records} record(s) here) by statement ${x.statement}: subject ${x.subjectRef.slice(0, 16)}…, ${x.reason}, ${iso(x.shreddedAtMs)}; commitments unopenable, signatures and proofs checked`),
    `findings  ${c.failures} failure(s) on ${c.recordsFailed} record(s), ${c.warnings} warning(s)${c.notJudged > 0 ? `, ${c.notJudged} outside the window` : ''}`
  ]
  const list = (title: string, findings: Verdict['failures']): void => {
    if (findings.length === 0) return
    lines.push('', `${title}:`)
    for (const f of findings) {
      const seq = f.seq === undefined ? 'bundle' : f.lastSeq !== undefined && f.lastSeq !== f.seq ? `seq ${f.seq}..${f.lastSeq}` : `seq ${f.seq}`
      lines.push(`  ${seq.padEnd(12)} ${f.reason.padEnd(20)} ${f.message}`)
    }
  }
  list('failures', v.failures)
  list('warnings', v.warnings)
  if (v.truncated) lines.push('  (more findings: see --json and --max-findings)')
  if (v.failures.length > 0) {
    lines.push('', 'reasons:')
    for (const reason of Object.keys(v.reasons) as Array<keyof typeof REASON_DESCRIPTIONS>) lines.push(`  ${reason.padEnd(20)} ${String(v.reasons[reason]).padStart(6)}  ${REASON_DESCRIPTIONS[reason]}`)
  }
  return lines.join('\n') + '\n'
}

/** The timeline as text for a terminal. */
export function formatTimeline (t: Timeline): string {
  const lines = [`device ${t.device}: ${t.records} records, ${t.inferences} inferences${t.malformed > 0 ? `, ${t.malformed} malformed` : ''}`]
  const events: Array<[number, number, string]> = [
    ...t.boots.map(e => [e.timeMs, e.seq, `boot ${e.boot} (agent ${e.agentVersion}, ${e.profile})`] as [number, number, string]),
    ...t.reboots.filter(e => !e.clean).map(e => [e.timeMs, e.seq, `unclean reboot ${e.fromBoot} -> ${e.toBoot} (no shutdown record)`] as [number, number, string]),
    ...t.modelLoads.map(e => [e.timeMs, e.seq, `model load ${e.name === null ? 'UNREGISTERED' : `${e.name} ${String(e.version)}`} ${e.modelHash.slice(0, 12)} (${e.file}, ${e.status}, policy ${e.policy})`] as [number, number, string]),
    ...t.policies.map(e => [e.timeMs, e.seq, `policy v${e.version} ${e.mode} in force (fleet ${e.fleetId}, sha256 ${e.policyHash.slice(0, 12)})`] as [number, number, string]),
    ...t.dataCaptures.map(e => [e.timeMs, e.seq, `data capture for ${e.dataset}${e.label === null ? '' : ` (${e.label})`}, ${e.sizeBytes} bytes, commitment ${e.commitment.slice(0, 12)}`] as [number, number, string]),
    ...t.gaps.map(e => [e.timeMs, e.seq, `gap ${e.firstSeq}..${e.lastSeq} dropped: ${e.reason}`] as [number, number, string]),
    ...t.keyRotations.map(e => [e.timeMs, e.seq, `key rotation to ${e.keyFingerprint}, valid from ${iso(e.validFromMs)}`] as [number, number, string]),
    ...t.shutdowns.map(e => [e.timeMs, e.seq, `shutdown: ${e.reason}`] as [number, number, string]),
    ...t.oversight.map(e => [e.timeMs, e.seq, `oversight by ${e.reviewer}: ${e.verdict} decision ${e.decisionDeviceId} seq ${e.decisionSeq} (${e.decisionHash.slice(0, 12)}): ${e.reason}`] as [number, number, string]),
    ...t.sessions.map(e => [e.timeMs, e.seq, `use ${e.phase} ${e.sessionId}, reference ${e.referenceHash === null ? 'none' : `${e.referenceName} ${e.referenceHash.slice(0, 12)}`}`] as [number, number, string])
  ].sort((a, b) => a[1] - b[1])
  lines.push('', 'events:')
  for (const [timeMs, seq, text] of events) lines.push(`  ${iso(timeMs)}  seq ${String(seq).padEnd(8)} ${text}`)
  if (t.missing.length > 0) lines.push('', `missing, undeclared: ${t.missing.map(m => `${m.firstSeq}..${m.lastSeq}`).join(', ')}`)
  lines.push('', 'models:')
  for (const m of t.models) lines.push(`  ${m.modelHash.slice(0, 12)}  ${(m.name === null ? 'UNREGISTERED' : `${m.name} ${String(m.version)}`).padEnd(24)} ${m.status.padEnd(10)} ${m.inferences} inferences`)
  lines.push('', `inferences per ${t.intervalMs} ms:`)
  for (const b of t.buckets) if (b.total > 0) lines.push(`  ${iso(b.startMs)}  ${String(b.total).padStart(7)}`)
  lines.push('', 'decisions:')
  for (const d of t.decisions) lines.push(`  ${String(d.count).padStart(7)}  ${d.decision === null ? '(none)' : JSON.stringify(d.decision)}`)
  if (t.otherDecisions.count > 0) lines.push(`  ${String(t.otherDecisions.count).padStart(7)}  (${t.otherDecisions.distinct} other values)`)
  return lines.join('\n') + '\n'
}

if (process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)) {
  runCli(process.argv.slice(2)).then(code => { process.exitCode = code }, (e: unknown) => {
    process.stderr.write(`INTERNAL: ${String(e)}\n`)
    process.exitCode = 1
  })
}
