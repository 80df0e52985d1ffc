/**
 * `provenance dataset register`: a dataset version (the manifest's root digest, name, version,
 * parent version, URI) written to the LineageRegistry by a DATA_CURATOR account. The chain code is
 * loaded only here, so the rest of the lineage commands stay offline.
 */
import { parseHexSecret32, readSecret } from '../../common/index.js'
import { stringFlag, UsageError, type ParsedArgs } from '../cli/args.js'
import type { CommandFailure } from '../cli/commands.js'
import { parseManifest, DEFAULT_MANIFEST_MAX_BYTES } from './manifest.js'
import { readBounded } from '../cli/files.js'
import type { LineageCliIo, LineageCommand } from './cli.js'

/** Environment variable read for the curator's Ethereum key when --key-file is not given. */
export const CURATOR_KEY_ENV = 'PROVENANCE_CURATOR_KEY'

/** `provenance dataset register`. */
export const REGISTER_COMMAND: LineageCommand = {
  path: ['dataset', 'register'],
  summary: 'register a dataset version in the LineageRegistry (a DATA_CURATOR account)',
  description: [
    'Registers a dataset version in the LineageRegistry (docs/LINEAGE.md §3): its manifest\'s root digest, name, version, parent and URI. The account must hold DATA_CURATOR_ROLE; a child version only by the parent\'s curator. Reverts are named (REGISTRY_UNAUTHORIZED for a non-curator, REGISTRY_REVERTED).',
    `Required: --manifest, --dataset-version, --rpc-url, --lineage, --key-file (or $${CURATOR_KEY_ENV}).`
  ],
  options: [
    { name: 'manifest', type: 'string', value: 'FILE', description: 'The dataset manifest (provenance dataset hash).' },
    { name: 'dataset-version', type: 'string', value: 'V', description: 'The version, e.g. 1.1.0.' },
    { name: 'name', type: 'string', value: 'NAME', description: 'Default: the manifest\'s subject name.' },
    { name: 'parent', type: 'string', value: 'FILE|HEX', description: 'The previous version: its manifest file or its root digest (64 hex).' },
    { name: 'uri', type: 'string', value: 'URI', description: 'Where the dataset lives.' },
    { name: 'rpc-url', type: 'string', value: 'URL', description: 'JSON-RPC endpoint.' },
    { name: 'lineage', type: 'string', value: 'ADDRESS', description: 'The LineageRegistry address.' },
    { name: 'key-file', type: 'string', value: 'FILE', description: `The curator's Ethereum private key, 0600 (default: $${CURATOR_KEY_ENV}).` },
    { name: 'json', type: 'boolean', description: 'The result as JSON on stdout.' }
  ],
  runWith: async (args, io) => await runDatasetRegister(args, io)
}

/** Runs `provenance dataset register`. */
export async function runDatasetRegister (args: ParsedArgs, io: LineageCliIo): Promise<CommandFailure> {
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
    return undefined
  } finally {
    provider.destroy()
  }
}
