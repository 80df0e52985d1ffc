/**
 * `provenance dataset register`: a dataset version (the manifest's root digest, name, version,
 * parent version, URI) written to the LineageRegistry by a DATA_CURATOR account. The chain code is
 * loaded only here, so the rest of the lineage commands stay offline.
 */
import { parseHexSecret32, readSecret } from '../../common/index.js'
import { stringFlag, UsageError, type ParsedArgs } from '../cli/args.js'
import { parseManifest, DEFAULT_MANIFEST_MAX_BYTES } from './manifest.js'
import { readBounded, type LineageCliIo } from './cli.js'

/** Environment variable read for the curator's Ethereum key when --key-file is not given. */
export const CURATOR_KEY_ENV = 'PROVENANCE_CURATOR_KEY'

export const REGISTER_USAGE = `usage: provenance dataset register --manifest FILE --dataset-version V --rpc-url URL --lineage ADDRESS --key-file FILE [options]

Registers a dataset version in the LineageRegistry (docs/LINEAGE.md §3): its manifest's root digest,
name, version, parent and URI. The account must hold DATA_CURATOR_ROLE; a child version only by the
parent's curator. Reverts are named (REGISTRY_UNAUTHORIZED for a non-curator, REGISTRY_REVERTED).

  --manifest FILE         the dataset manifest (provenance dataset hash)
  --dataset-version V     the version, e.g. 1.1.0
  --name NAME             default: the manifest's subject name
  --parent FILE|HEX       the previous version: its manifest file or its root digest (64 hex)
  --uri URI               where the dataset lives
  --rpc-url URL           JSON-RPC endpoint
  --lineage ADDRESS       the LineageRegistry address
  --key-file FILE         the curator's Ethereum private key, 0600 (default: $${CURATOR_KEY_ENV})
  --json                  the result as JSON on stdout
`

/** Runs `provenance dataset register`. */
export async function runDatasetRegister (args: ParsedArgs, io: LineageCliIo): Promise<number> {
  if (args.positional.length > 0) throw new UsageError(`unexpected argument ${JSON.stringify(args.positional[0])}`)
  const need = (name: string): string => {
    const v = stringFlag(args, name)
    if (v === undefined) throw new UsageError(`--${name} is required`)
    return v
  }
  const manifest = parseManifest(await readBounded(need('manifest'), DEFAULT_MANIFEST_MAX_BYTES))
  const version = need('dataset-version')
  const rpcUrl = need('rpc-url')
  const lineageAddress = need('lineage')
  if (!/^0x[0-9a-fA-F]{40}$/.test(lineageAddress)) throw new UsageError('--lineage must be a 0x-hex address')
  const parentArg = stringFlag(args, 'parent')
  const parent = parentArg === undefined
    ? undefined
    : /^[0-9a-f]{64}$/.test(parentArg) ? parentArg : parseManifest(await readBounded(parentArg, DEFAULT_MANIFEST_MAX_BYTES)).subject[0].digest.sha256
  const key = '0x' + parseHexSecret32(await readSecret({ file: stringFlag(args, 'key-file'), envName: CURATOR_KEY_ENV, env: io.env, what: 'curator key', fileOption: '--key-file' }), 'the curator key')
  const name = stringFlag(args, 'name') ?? manifest.subject[0].name
  const datasetHash = manifest.subject[0].digest.sha256
  const { Wallet } = await import('ethers')
  const { LineageClient, createRpcProvider } = await import('../../contracts/index.js')
  const provider = createRpcProvider(rpcUrl)
  try {
    const wallet = new Wallet(key, provider)
    const lineage = new LineageClient(lineageAddress, wallet)
    const uri = stringFlag(args, 'uri')
    const tx = await lineage.registerDataset({ datasetHash: '0x' + datasetHash, name, version, ...(parent === undefined ? {} : { parentHash: '0x' + parent }), ...(uri === undefined ? {} : { uri }) })
    const value = { datasetHash, name, version, parentHash: parent ?? null, curator: wallet.address, txHash: tx.txHash, blockNumber: tx.blockNumber }
    io.stdout(args.flags.has('json') ? JSON.stringify(value, null, 2) + '\n' : `registered dataset ${name} ${version} ${datasetHash}${parent === undefined ? '' : ` (parent ${parent.slice(0, 12)})`} by ${wallet.address}, tx ${tx.txHash}\n`)
    return 0
  } finally {
    provider.destroy()
  }
}
