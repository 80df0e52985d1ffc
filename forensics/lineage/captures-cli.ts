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
import { attachCaptureProofs, checkCaptures, parseCaptures, DEFAULT_CAPTURES_MAX_BYTES, type CaptureAnchorFacts, type CaptureCheck } from './captures.js'
import { deviceKeysFrom, readBounded, readManifestFile, type LineageCliIo } from './cli.js'

/** Environment variable read for the gateway's API token when --token-file is not given (as `provenance export`). */
export const CAPTURES_GATEWAY_TOKEN_ENV = 'PROVENANCE_GATEWAY_TOKEN'

export const CAPTURES_USAGE = `usage: provenance dataset captures --manifest FILE --captures FILE (--device-keys LIST | --rpc-url URL --registry ADDRESS) [options]

Checks the field captures behind a dataset (docs/LINEAGE.md §5): each entry of the captures file
names a file of the manifest, a device data-capture record (kind 10), the salt that opens its
commitment and, once anchored, the record's inclusion proof. Per entry: the record decodes, is
signed by the device's registered key at its time, the device is not revoked, the record commits
to the file's digest and size in the manifest, and (online) its proof leads to a root the registry
anchored, with the batch, transaction and time range the chain holds.

  --manifest FILE         the dataset manifest (provenance dataset hash)
  --captures FILE         the captures file (format edge-provenance/data-captures/v1)
  --device-keys LIST      ID=HEX64[:revoked],... device public keys (offline: proofs are checked
                          against their own checkpoint only, and shown as unchecked)
  --rpc-url URL           read device keys and anchored roots from the ProvenanceRegistry
  --registry ADDRESS      its address (with --rpc-url)
  --require-proofs        a capture without an inclusion proof fails (PROOF_MISSING)
  --json                  the checks as JSON on stdout

Exit 0: every capture checks out. Exit 1: one does not (CAPTURES_UNVERIFIED on stderr), or an error.
`

export const CAPTURE_PROOFS_USAGE = `usage: provenance dataset capture-proofs --captures FILE --gateway URL [--token-file FILE] [--out FILE] [--json]

Attaches to each entry of a captures file its record's inclusion proof, asked of the gateway that
stores the device's records (GET /v1/proof/<device>/<seq>: a C2SP tlog-proof with the anchoring in
its extra lines). Entries that already carry a proof keep it. Nothing the gateway says is trusted:
"provenance dataset captures --rpc-url" checks every proof against the chain.

  --captures FILE         the captures file
  --gateway URL           gateway HTTP API, e.g. http://127.0.0.1:8080
  --token-file FILE       the gateway's API token (its <stateDir>/api-token, mode 0600; default: $${CAPTURES_GATEWAY_TOKEN_ENV})
  --out FILE              write the captures file with proofs there (default: stdout)
  --json                  with --out: a JSON summary on stdout

Exit 0: every entry has a proof. Exit 1: some records are not anchored yet (CAPTURES_UNANCHORED on
stderr, naming them; the file is written with the proofs there are), or an error.
`

export async function runDatasetCaptures (args: ParsedArgs, io: LineageCliIo): Promise<number> {
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
  if (failed.length > 0) {
    io.stderr.write(`CAPTURES_UNVERIFIED: ${failed.length} of ${checks.length} captures fail\n`)
    return 1
  }
  return 0
}

export async function runCaptureProofs (args: ParsedArgs, io: LineageCliIo): Promise<number> {
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
  const { GatewayClient } = await import('../export/index.js')
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
  if (missing.length > 0) {
    io.stderr.write(`CAPTURES_UNANCHORED: no proof yet for ${missing.length} record(s): ${missing.slice(0, 5).join(', ')}${missing.length > 5 ? ', …' : ''}\n`)
    return 1
  }
  return 0
}
