/**
 * `provenance-fleet model hash | register | approve | deprecate | revoke | show`: models named by
 * the sha256 of their file (read and hashed here, as the agent does), never by a hash typed by hand
 * unless --hash is given on purpose.
 */
import { UsageError, type CliCommandSpec, type CliContext } from '../../common/index.js'
import type { ModelStatusChange } from '../../contracts/index.js'
import type { ModelIdentity } from '../model-file.js'
import { CHAIN_READ, CHAIN_WRITE, hex32 } from '../options.js'

// ethers, the contracts and onnx-proto load on first use: --help and usage errors stay fast.
const identifyModelFile = async (path: string): Promise<ModelIdentity> => await (await import('../model-file.js')).identifyModelFile(path)
async function loadChain (): Promise<typeof import('../chain.js') & typeof import('../explain.js')> {
  const [chain, explain] = await Promise.all([import('../chain.js'), import('../explain.js')])
  return { ...chain, ...explain }
}

const FILE = { name: 'file', type: 'string', value: '<model.onnx>', description: 'The ONNX model file; its sha256 is the model hash.' } as const
const HASH = { name: 'hash', type: 'string', value: '<hex>', description: 'The model hash (sha256 of the file), instead of --file.' } as const

async function modelHashOf (ctx: CliContext): Promise<{ hash: string, identity?: ModelIdentity }> {
  const file = ctx.string('file')
  const hash = ctx.string('hash')
  if ((file === undefined) === (hash === undefined)) throw new UsageError('give exactly one of --file and --hash')
  if (file !== undefined) {
    const identity = await identifyModelFile(file)
    return { hash: '0x' + identity.fileHash, identity }
  }
  return { hash: hex32(hash as string, '--hash') }
}

const PAST = { approve: 'approved', deprecate: 'deprecated', revoke: 'revoked' } as const

function statusCommand (verb: 'approve' | 'deprecate' | 'revoke'): CliCommandSpec {
  const method = `${verb}Model` as const
  const summaries = {
    approve: 'Approve a registered model (registered → approved).',
    deprecate: 'Deprecate a model (registered | approved → deprecated).',
    revoke: 'Revoke a model (final): devices with the registry configured refuse it.'
  }
  return {
    path: ['model', verb],
    summary: summaries[verb],
    description: ['Needs MODEL_PUBLISHER_ROLE. A status only moves forward; a step back fails with InvalidStatusTransition.'],
    options: [FILE, HASH, ...CHAIN_WRITE],
    mutating: true,
    run: async (ctx) => {
      const { hash } = await modelHashOf(ctx)
      const { openChain, transact } = await loadChain()
      const chain = await openChain(ctx, { signer: true })
      try {
        const tx = await transact<ModelStatusChange>(ctx, chain, method, [hash], async () => await chain.registry[method](hash))
        const { result: mined, ...txOut } = tx
        const value = { ...txOut, modelHash: hash.slice(2), ...(mined !== undefined ? { from: mined.from, to: mined.to } : {}) }
        return { value, text: `${tx.dryRun ? `dry run: would ${verb}` : PAST[verb]} model ${hash.slice(2)}${mined !== undefined ? ` (${mined.from} → ${mined.to}, tx ${tx.txHash ?? ''})` : ''}` }
      } finally {
        chain.close()
      }
    }
  }
}

export const MODEL_COMMANDS: readonly CliCommandSpec[] = [
  {
    path: ['model', 'hash'],
    summary: 'Print a model file\'s identities (file hash, manifest hash) as the agent computes them; no chain.',
    options: [{ ...FILE }],
    run: async (ctx) => {
      const identity = await identifyModelFile(ctx.required('file'))
      return { value: identity, text: [`file hash      ${identity.fileHash}`, `manifest hash  ${identity.manifestHash}`, `graph hash     ${identity.graphHash}`, `size           ${identity.sizeBytes} bytes, ${identity.initializerCount} weight tensors`] }
    }
  },
  {
    path: ['model', 'register'],
    summary: 'Register a model file on chain: its file hash, manifest hash, name and version.',
    description: ['Needs MODEL_PUBLISHER_ROLE. Reads and hashes the file as the agent does when it loads it (sha256 of the bytes; the tensor manifest hash that forensics compares with every model-load record). The model starts as registered; approve it with `model approve`.'],
    options: [
      FILE,
      { name: 'name', type: 'string', value: '<name>', description: 'Model name, e.g. "paddleocr-det".' },
      { name: 'model-version', type: 'string', value: '<version>', description: 'Model version, e.g. "1.4.2".' },
      { name: 'parent', type: 'string', value: '<hex>', description: 'Hash of the model this one derives from (must be registered).' },
      { name: 'metadata-uri', type: 'string', value: '<uri>', description: 'Where the model card or signing bundle lives.' },
      ...CHAIN_WRITE
    ],
    mutating: true,
    run: async (ctx) => {
      const identity = await identifyModelFile(ctx.required('file'))
      const name = ctx.required('name')
      const version = ctx.required('model-version')
      const parentOption = ctx.string('parent')
      const parent = parentOption === undefined ? undefined : hex32(parentOption, '--parent')
      const metadataURI = ctx.string('metadata-uri') ?? ''
      const hash = '0x' + identity.fileHash
      const manifestHash = '0x' + identity.manifestHash
      const { openChain, transact } = await loadChain()
      const chain = await openChain(ctx, { signer: true })
      try {
        const zero = '0x' + '00'.repeat(32)
        const tx = await transact(ctx, chain, 'registerModel', [hash, name, version, parent ?? zero, manifestHash, metadataURI],
          async () => await chain.registry.registerModel({ modelHash: hash, name, version, ...(parent !== undefined ? { parentHash: parent } : {}), manifestHash, metadataURI }))
        const { result: _mined, ...txOut } = tx
        const value = { ...txOut, modelHash: identity.fileHash, manifestHash: identity.manifestHash, name, version, ...(parent !== undefined ? { parentHash: parent.slice(2) } : {}), metadataURI }
        return { value, text: [`${tx.dryRun ? 'dry run: would register' : 'registered'} ${name} ${version}`, `  model hash     ${identity.fileHash}`, `  manifest hash  ${identity.manifestHash}`, ...(tx.txHash !== undefined ? [`  tx ${tx.txHash}`] : [])] }
      } finally {
        chain.close()
      }
    }
  },
  statusCommand('approve'),
  statusCommand('deprecate'),
  statusCommand('revoke'),
  {
    path: ['model', 'show'],
    summary: 'A model as the registry knows it: name, version, status, manifest hash, publisher.',
    options: [FILE, HASH, ...CHAIN_READ],
    run: async (ctx) => {
      const { hash, identity } = await modelHashOf(ctx)
      const { openChain, explainRegistryError } = await loadChain()
      const chain = await openChain(ctx, { signer: false })
      try {
        const m = await chain.registry.getModel(hash).catch((e: unknown) => { throw explainRegistryError(e) })
        if (m === undefined) return { value: { modelHash: hash.slice(2), status: 'none' }, text: `model ${hash.slice(2)} is not registered` }
        const manifestMatches = identity !== undefined ? m.manifestHash.slice(2) === identity.manifestHash : undefined
        const value = {
          modelHash: hash.slice(2),
          name: m.name,
          version: m.version,
          status: m.status,
          manifestHash: m.manifestHash.slice(2),
          ...(manifestMatches !== undefined ? { manifestMatchesFile: manifestMatches } : {}),
          parentHash: m.parentHash?.slice(2) ?? null,
          publisher: m.publisher,
          metadataURI: m.metadataURI,
          registeredAtSec: m.registeredAtSec.toString()
        }
        return { value, text: [`${m.name} ${m.version}: ${m.status}`, `  model hash     ${value.modelHash}`, `  manifest hash  ${value.manifestHash}${manifestMatches === false ? '  (DIFFERS from the file\'s)' : ''}`, `  parent         ${value.parentHash ?? 'none'}`, `  publisher      ${m.publisher}`] }
      } finally {
        chain.close()
      }
    }
  }
]
