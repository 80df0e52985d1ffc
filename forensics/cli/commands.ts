/**
 * The commands of `provenance` behind the scaffold (common/cli, program.ts): each reads its
 * parsed command line, writes its result on stdout and progress on stderr, and returns the
 * failure it found (an invalid verdict, a broken trace) or undefined. Usage errors are thrown.
 */
import { readFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { BUNDLE_LIMITS, DEVICE_ID_PATTERN, BundleError, decodeBundle, encodeBundle, type Bundle } from '../../protocol/index.js'
import { renderReport } from '../report/index.js'
import { buildTimeline, type Timeline } from '../timeline/index.js'
import { verifyBundle, type Verdict, type VerifyOptions } from '../verify/index.js'
import { intFlag, stringFlag, timeFlag, UsageError, type ParsedArgs } from './args.js'
import { formatTimeline, formatVerdict } from './format.js'
import { GATEWAY_TOKEN_ENV, RPC_URL_ENV, type CliIo } from './io.js'
import { createProgress } from './progress.js'
import { readBounded, writeOut } from './files.js'

/** What a command found that makes it fail though it ran (exit 1, `code: message` on stderr after its result). */
export type CommandFailure = { code: string, message: string } | undefined

function onePath (args: ParsedArgs): string {
  if (args.positional.length !== 1) throw new UsageError(args.positional.length === 0 ? 'give the bundle file' : 'give exactly one bundle file')
  return args.positional[0] as string
}

/** The bundle file: size checked before reading it. */
async function readBundleFile (path: string): Promise<Bundle> {
  return decodeBundle(await readBounded(path, BUNDLE_LIMITS.bundleBytes, message => new BundleError('BUNDLE_TOO_LARGE', message)))
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
  const workers = stringFlag(args, 'workers') === '0' ? 0 : intFlag(args, 'workers')
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

function invalidSummary (v: Verdict): CommandFailure {
  const first = v.failures[0]
  const at = first === undefined ? '' : `; first: ${first.seq === undefined ? 'bundle' : `seq ${first.seq}`} ${first.reason}`
  return { code: 'VERDICT_INVALID', message: `${v.counts.failures} failure(s) on ${v.counts.recordsFailed} record(s)${at}` }
}

export async function runVerify (args: ParsedArgs, io: CliIo): Promise<CommandFailure> {
  const path = onePath(args)
  const options = verifyOptions(args, io)
  const bundle = await readBundleFile(path)
  const verdict = await verifyBundle(bundle, options)
  io.stdout(args.flags.has('json') ? JSON.stringify(verdict, null, 2) + '\n' : formatVerdict(verdict))
  if (verdict.verdict === 'invalid') return invalidSummary(verdict)
  return undefined
}

export async function runTimeline (args: ParsedArgs, io: CliIo): Promise<CommandFailure> {
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
  return undefined
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

export async function runExport (args: ParsedArgs, io: CliIo): Promise<CommandFailure> {
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
  const { exportBundle } = await import('../export/index.js')
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
  if (out === undefined) { io.stdout(text); return undefined }
  await writeOut(out, text)
  const summary = {
    out, device: bundle.device.id, records: bundle.records.length, proofs: bundle.proofs.length, anchors: bundle.anchors.length,
    models: bundle.models.length, readAtBlock: bundle.chain.readAtBlock, bytes: Buffer.byteLength(text)
  }
  io.stdout(args.flags.has('json')
    ? JSON.stringify(summary, null, 2) + '\n'
    : `exported ${summary.records} records of ${summary.device} (${summary.proofs} proofs, ${summary.anchors} anchors, ${summary.models} models, facts at block ${summary.readAtBlock}) to ${out}, ${summary.bytes} bytes\n`)
  return undefined
}

export async function runReport (args: ParsedArgs, io: CliIo): Promise<CommandFailure> {
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
  if (verdict.verdict === 'invalid') return invalidSummary(verdict)
  return undefined
}

export async function runTrace (args: ParsedArgs, io: CliIo): Promise<CommandFailure> {
  const path = onePath(args)
  const options = verifyOptions(args, io)
  const recordArg = stringFlag(args, 'record')
  const m = recordArg === undefined ? null : /^(.+):(\d{1,15})$/.exec(recordArg)
  if (m === null) throw new UsageError('--record DEVICE:SEQ is required')
  const bundle = await readBundleFile(path)
  if (m[1] !== bundle.device.id) throw new UsageError(`the bundle is of device ${bundle.device.id}, not ${m[1] as string}`)
  const { parseDeviceKeyList, registryDeviceKeys, lineageRunFacts } = await import('../lineage/device-keys.js')
  const { parseCaptures, DEFAULT_CAPTURES_MAX_BYTES } = await import('../lineage/captures.js')
  const { parseContributions, DEFAULT_CONTRIBUTIONS_MAX_BYTES } = await import('../lineage/federated.js')
  const { traceRecord, formatTrace } = await import('../lineage/trace.js')
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
  if (!trace.ok) return { code: 'TRACE_BROKEN', message: trace.broken.join('; ') }
  return undefined
}

export async function runCompliance (args: ParsedArgs, io: CliIo): Promise<CommandFailure> {
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
  const { buildCompliance, renderCompliance } = await import('../compliance/index.js')
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
    return { code: 'VERDICT_INVALID', message: first !== undefined ? `${first.reason}: ${first.message}` : `device ${String(bad?.device)}: ${String(bad?.verdict.failures[0]?.reason)}` }
  }
  return undefined
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
  const { exportBundle } = await import('../export/index.js')
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
