/**
 * Compiles contracts/ProvenanceRegistry.sol and contracts/LineageRegistry.sol with solc from npm
 * (standard JSON, optimizer on, OpenZeppelin imports resolved from node_modules) and writes the
 * commit-able artifacts contracts/build/<Name>.json. Run: `node --import tsx contracts/compile.ts [--check]`.
 */

import { readFileSync, writeFileSync, mkdirSync } from 'node:fs'
import { createRequire } from 'node:module'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { RegistryError } from './errors.js'
import { isEntryPoint } from '../common/entry-point.js'

const require = createRequire(import.meta.url)
const here = dirname(fileURLToPath(import.meta.url))

/** Source unit name of the registry: relative to the repository root, so builds are path-independent. */
export const REGISTRY_SOURCE_NAME = 'contracts/ProvenanceRegistry.sol'
export const REGISTRY_CONTRACT_NAME = 'ProvenanceRegistry'
/** Where the committed artifact lives. */
export const REGISTRY_ARTIFACT_PATH = join(here, 'build', 'ProvenanceRegistry.json')
/** The lineage contract (datasets, trainer keys, training runs): built the same way. */
export const LINEAGE_SOURCE_NAME = 'contracts/LineageRegistry.sol'
export const LINEAGE_CONTRACT_NAME = 'LineageRegistry'
export const LINEAGE_ARTIFACT_PATH = join(here, 'build', 'LineageRegistry.json')

/**
 * Compiler settings. `cancun` is supported by mainnet, the major L2s and anvil; the high `runs`
 * favours cheap calls (anchor is called for ever) over deployment size (paid once).
 */
export const COMPILER_SETTINGS = {
  optimizer: { enabled: true, runs: 10_000 },
  evmVersion: 'cancun'
} as const

/** What the build writes: enough to deploy and to call, plus how it was made. */
export interface RegistryArtifact {
  contractName: string
  sourceName: string
  compiler: { version: string, settings: typeof COMPILER_SETTINGS }
  abi: unknown[]
  bytecode: string
  deployedBytecode: string
}

interface SolcOutputError { severity: string, formattedMessage?: string, message: string }
interface SolcOutput {
  errors?: SolcOutputError[]
  contracts?: Record<string, Record<string, {
    abi: unknown[]
    evm: { bytecode: { object: string }, deployedBytecode: { object: string } }
  }>>
}

/** Import callback for solc: only `@openzeppelin/contracts/...` sources, read from node_modules. */
export function resolveSolidityImport (path: string): { contents: string } | { error: string } {
  const prefix = '@openzeppelin/contracts/'
  // An import path comes from source text: refuse anything that could leave the package.
  if (!path.startsWith(prefix) || path.split('/').includes('..')) {
    return { error: `import not allowed: ${path}` }
  }
  try {
    const packageDir = dirname(require.resolve('@openzeppelin/contracts/package.json'))
    return { contents: readFileSync(join(packageDir, path.slice(prefix.length)), 'utf8') }
  } catch (e) {
    return { error: `cannot read ${path}: ${(e as Error).message}` }
  }
}

/**
 * Compiles the registry from source and returns the artifact (does not write it).
 * @throws RegistryError CONTRACT_COMPILE_FAILED on any solc error
 */
export function compileRegistry (): RegistryArtifact {
  return compileContract(REGISTRY_SOURCE_NAME, REGISTRY_CONTRACT_NAME)
}

/**
 * Compiles the lineage contract from source and returns the artifact (does not write it).
 * @throws RegistryError CONTRACT_COMPILE_FAILED on any solc error
 */
export function compileLineage (): RegistryArtifact {
  return compileContract(LINEAGE_SOURCE_NAME, LINEAGE_CONTRACT_NAME)
}

function compileContract (sourceName: string, contractName: string): RegistryArtifact {
  const solc = require('solc') as {
    compile: (input: string, callbacks: { import: typeof resolveSolidityImport }) => string
    version: () => string
  }
  const source = readFileSync(join(here, `${contractName}.sol`), 'utf8')
  const input = {
    language: 'Solidity',
    sources: { [sourceName]: { content: source } },
    settings: {
      ...COMPILER_SETTINGS,
      outputSelection: { '*': { '*': ['abi', 'evm.bytecode.object', 'evm.deployedBytecode.object'] } }
    }
  }
  let output: SolcOutput
  try {
    output = JSON.parse(solc.compile(JSON.stringify(input), { import: resolveSolidityImport })) as SolcOutput
  } catch (e) {
    throw new RegistryError('CONTRACT_COMPILE_FAILED', 'solc failed to run', { cause: e })
  }
  const errors = (output.errors ?? []).filter((e) => e.severity === 'error')
  if (errors.length > 0) {
    const text = errors.map((e) => e.formattedMessage ?? e.message).join('\n')
    throw new RegistryError('CONTRACT_COMPILE_FAILED', `solc reported errors:\n${text}`)
  }
  const contract = output.contracts?.[sourceName]?.[contractName]
  if (contract === undefined) {
    throw new RegistryError('CONTRACT_COMPILE_FAILED', `solc produced no ${contractName}`)
  }
  return {
    contractName,
    sourceName,
    compiler: { version: solc.version(), settings: COMPILER_SETTINGS },
    abi: contract.abi,
    bytecode: '0x' + contract.evm.bytecode.object,
    deployedBytecode: '0x' + contract.evm.deployedBytecode.object
  }
}

/** The exact bytes the artifact file holds for `artifact` (stable key order, trailing newline). */
export function serializeArtifact (artifact: RegistryArtifact): string {
  return JSON.stringify(artifact, null, 2) + '\n'
}

/** Compiles and writes the artifact; returns its path. @throws RegistryError CONTRACT_COMPILE_FAILED */
export function writeRegistryArtifact (path: string = REGISTRY_ARTIFACT_PATH): string {
  const text = serializeArtifact(compileRegistry())
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, text)
  return path
}

/** Compiles and writes the lineage artifact; returns its path. @throws RegistryError CONTRACT_COMPILE_FAILED */
export function writeLineageArtifact (path: string = LINEAGE_ARTIFACT_PATH): string {
  const text = serializeArtifact(compileLineage())
  mkdirSync(dirname(path), { recursive: true })
  writeFileSync(path, text)
  return path
}

if (isEntryPoint(import.meta.url)) {
  const check = process.argv.includes('--check')
  try {
    if (check) {
      for (const [path, compile] of [[REGISTRY_ARTIFACT_PATH, compileRegistry], [LINEAGE_ARTIFACT_PATH, compileLineage]] as const) {
        if (readFileSync(path, 'utf8') !== serializeArtifact(compile())) {
          process.stderr.write(`CONTRACT_ARTIFACT_INVALID: ${path} differs from a fresh compile; run contracts/compile.ts\n`)
          process.exit(1)
        }
        process.stdout.write(`${path} is up to date\n`)
      }
    } else {
      process.stdout.write(writeRegistryArtifact() + '\n')
      process.stdout.write(writeLineageArtifact() + '\n')
    }
  } catch (e) {
    const code = (e as { code?: string }).code ?? 'CONTRACT_COMPILE_FAILED'
    process.stderr.write(`${code}: ${(e as Error).message}\n`)
    process.exit(1)
  }
}
