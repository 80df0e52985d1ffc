/**
 * `provenance dataset captures` (check the field captures behind a dataset, their records' inclusion
 * proofs against the chain) and `provenance dataset capture-proofs` (attach those proofs from a
 * gateway). docs/LINEAGE.md §5.
 */
import { writeFile } from 'node:fs/promises'
import { resolve } from 'node:path'
import { CommonError, readSecret } from '../../common/index.js'
import { ForensicsError } from '../errors.js'
import { stringFlag, UsageError, type ParsedArgs } from '../cli/args.js'
import type { CommandFailure } from '../cli/commands.js'
import { readBounded } from '../cli/files.js'
import { attachCaptureProofs, checkCaptures, parseCaptures, DEFAULT_CAPTURES_MAX_BYTES, type CaptureAnchorFacts, type CaptureCheck } from './captures.js'
import { deviceKeysFrom, readManifestFile, DEVICE_KEYS_OPTION, type LineageCliIo, type LineageCommand } from './cli.js'

/** Environment variable read for the gateway's API token when --token-file is not given (as `provenance export`). */
export const CAPTURES_GATEWAY_TOKEN_ENV = 'PROVENANCE_GATEWAY_TOKEN'

/** `provenance dataset captures|capture-proofs`. */
export const CAPTURES_COMMANDS: readonly LineageCommand[] = [
  {
    path: ['dataset', 'captures'],
    summary: 'check the field captures behind a dataset, their records\' inclusion proofs against the chain',
    description: [
      'Checks the field captures behind a dataset (docs/LINEAGE.md §5): each entry of the captures file names a file of the manifest, a device data-capture record (kind 10), the salt that opens its commitment and, once anchored, the record\'s inclusion proof. Per entry: the record decodes, is signed by the device\'s registered key at its time, the device is not revoked, the record commits to the file\'s digest and size in the manifest, and (online) its proof leads to a root the registry anchored, with the batch, transaction and time range the chain holds.',
      'Required: --manifest, --captures, and --device-keys or --rpc-url with --registry.',
      'Exit 0: every capture checks out. Exit 1: one does not (CAPTURES_UNVERIFIED on stderr), or an error.'
    ],
    options: [
      { name: 'manifest', type: 'string', value: 'FILE', description: 'The dataset manifest (provenance dataset hash).' },
      { name: 'captures', type: 'string', value: 'FILE', description: 'The captures file (format edge-provenance/data-captures/v1).' },
      { ...DEVICE_KEYS_OPTION, description: 'ID=HEX64[:revoked],... device public keys (offline: proofs are checked against their own checkpoint only, and shown as unchecked).' },
      { name: 'rpc-url', type: 'string', value: 'URL', description: 'Read device keys and anchored roots from the ProvenanceRegistry.' },
      { name: 'registry', type: 'string', value: 'ADDRESS', description: 'Its address (with --rpc-url).' },
      { name: 'require-proofs', type: 'boolean', description: 'A capture without an inclusion proof fails (PROOF_MISSING).' },
      { name: 'json', type: 'boolean', description: 'The checks as JSON on stdout.' }
    ],
    runWith: async (args, io) => await runDatasetCaptures(args, io)
  },
  {
    path: ['dataset', 'capture-proofs'],
    summary: 'attach the captures\' inclusion proofs, asked of a gateway',
    description: [
      'Attaches to each entry of a captures file its record\'s inclusion proof, asked of the gateway that stores the device\'s records (GET /v1/proof/<device>/<seq>: a C2SP tlog-proof with the anchoring in its extra lines). Entries that already carry a proof keep it. Nothing the gateway says is trusted: "provenance dataset captures --rpc-url" checks every proof against the chain.',
      'Required: --captures, --gateway.',
      'Exit 0: every entry has a proof. Exit 1: some records are not anchored yet (CAPTURES_UNANCHORED on stderr, naming them; the file is written with the proofs there are), or an error.'
    ],
    options: [
      { name: 'captures', type: 'string', value: 'FILE', description: 'The captures file.' },
      { name: 'gateway', type: 'string', value: 'URL', description: 'Gateway HTTP API, e.g. http://127.0.0.1:8080.' },
      { name: 'token-file', type: 'string', value: 'FILE', description: `The gateway's API token (its <stateDir>/api-token, mode 0600; default: $${CAPTURES_GATEWAY_TOKEN_ENV}).` },
      { name: 'out', type: 'string', value: 'FILE', description: 'Write the captures file with proofs there (default: stdout).' },
      { name: 'json', type: 'boolean', description: 'With --out: a JSON summary on stdout.' }
    ],
    runWith: async (args, io) => await runCaptureProofs(args, io)
  }
]

export async function runDatasetCaptures (args: ParsedArgs, io: LineageCliIo): Promise<CommandFailure> {
  if (args.positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args.positional[0])}`)
  const manifestPath = stringFlag(args, 'manifest')
  const capturesPath = stringFlag(args, 'captures')
  if (manifestPath === undefined || capturesPath === undefined) throw new UsageError('--manifest and --captures are required')
  const manifest = await readManifestFile(manifestPath)
  const captures = parseCaptures(await readBounded(capturesPath, DEFAULT_CAPTURES_MAX_BYTES))
  const keys = await deviceKeysFrom(args)
  let checks: CaptureCheck[]
  let closeAnchors = (): void => {}
  try {
    let anchors: CaptureAnchorFacts | undefined
    const rpcUrl = stringFlag(args, 'rpc-url')
    if (rpcUrl !== undefined) {
      const { registryAnchorFacts } = await import('./device-keys.js')
      const opened = await registryAnchorFacts(rpcUrl, stringFlag(args, 'registry') as string)
      anchors = opened.facts
      closeAnchors = opened.close
    }
    checks = await checkCaptures(manifest, captures, keys.lookup, { ...(anchors === undefined ? {} : { anchors }), requireProofs: args.flags.has('require-proofs') })
  } finally {
    keys.close()
    closeAnchors()
  }
  const failed = checks.filter(c => !c.ok)
  const covered = new Set(checks.filter(c => c.ok).map(c => c.name)).size
  const anchored = checks.filter(c => c.ok && c.proof === 'verified').length
  const files = manifest.predicate.resources.length
  if (args.flags.has('json')) {
    io.stdout(JSON.stringify({ ok: failed.length === 0, dataset: manifest.subject[0].digest.sha256, files, covered, anchored, checks }, null, 2) + '\n')
  } else {
    const proofText = (c: CaptureCheck): string => c.proof === 'verified'
      ? `anchored: leaf ${String(c.anchor?.leafIndex)} of batch ${String(c.anchor?.batchId)}, tx ${String(c.anchor?.txHash)}`
      : c.proof === 'unchecked' ? 'proof not checked against the chain' : 'no inclusion proof'
    const lines = checks.map(c => c.ok
      ? `ok    ${c.name}  ${String(c.deviceId)}#${String(c.seq)} ${String(c.dataset)}${c.label === null ? '' : ` (${c.label})`}  ${proofText(c)}`
      : `FAIL  ${c.name}  ${c.reason as string}${c.detail === undefined ? '' : `: ${c.detail}`}`)
    lines.push(`${covered} of ${files} files captured by registered devices, ${anchored} in batches anchored on chain`)
    io.stdout(lines.join('\n') + '\n')
  }
  if (failed.length > 0) return { code: 'CAPTURES_UNVERIFIED', message: `${failed.length} of ${checks.length} captures fail` }
  return undefined
}

export async function runCaptureProofs (args: ParsedArgs, io: LineageCliIo): Promise<CommandFailure> {
  if (args.positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args.positional[0])}`)
  const capturesPath = stringFlag(args, 'captures')
  const gatewayUrl = stringFlag(args, 'gateway')
  if (capturesPath === undefined || gatewayUrl === undefined) throw new UsageError('--captures and --gateway are required')
  const tokenFile = stringFlag(args, 'token-file')
  let token: string | undefined
  if (tokenFile !== undefined || (io.env[CAPTURES_GATEWAY_TOKEN_ENV] ?? '') !== '') {
    try {
      token = await readSecret({ ...(tokenFile === undefined ? {} : { file: tokenFile }), envName: CAPTURES_GATEWAY_TOKEN_ENV, env: io.env, what: 'gateway token', fileOption: '--token-file' })
    } catch (e) {
      if (e instanceof CommonError) throw new UsageError(e.message)
      throw e
    }
  }
  const captures = parseCaptures(await readBounded(capturesPath, DEFAULT_CAPTURES_MAX_BYTES))
  const { GatewayClient } = await import('../export/gateway-client.js')
  let client
  try { client = new GatewayClient({ gatewayUrl, ...(token === undefined ? {} : { token }) }) } catch (e) { throw new UsageError((e as Error).message) }
  const { captures: proved, missing } = await attachCaptureProofs(captures, async (deviceId, seq) => await client.getProof(deviceId, seq))
  const text = JSON.stringify(proved, null, 2) + '\n'
  const out = stringFlag(args, 'out')
  if (out === undefined) io.stdout(text)
  else {
    try { await writeFile(resolve(out), text) } catch (e) { throw new ForensicsError('IO_FAILED', `cannot write ${out}: ${(e as Error).message}`, { cause: e }) }
    const summary = { out: resolve(out), captures: proved.captures.length, proved: proved.captures.length - missing.length, missing }
    io.stdout(args.flags.has('json') ? JSON.stringify(summary) + '\n' : `${summary.proved} of ${summary.captures} captures carry their record's inclusion proof: ${summary.out}\n`)
  }
  if (missing.length > 0) return { code: 'CAPTURES_UNANCHORED', message: `no proof yet for ${missing.length} record(s): ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}` }
  return undefined
}
