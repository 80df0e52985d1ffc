/**
 * The dispatcher every bin shares: parse, run, print, and turn every outcome into one exit code
 * (0 ok, 1 failure, 2 usage, 78 configuration) with at most one error line on stderr.
 */
import { UsageError } from '../errors.js'
import { formatHelp } from './help.js'
import { parseCommandLine } from './parse.js'
import { EXIT_CODES, type CliContext, type CliIo, type CliProgram, type CliResult, type CliValues } from './spec.js'

/** Codes of common/ that mean a configuration problem (exit 78). */
const COMMON_CONFIG_CODES: readonly string[] = ['SECRET_MISSING', 'SECRET_UNREADABLE', 'SECRET_INSECURE', 'SECRET_INVALID']

/** Runs `program` with `argv` (the words after its name); resolves with the exit code. */
export async function runProgram (program: CliProgram, argv: readonly string[], io: CliIo): Promise<number> {
  let parsed
  try {
    parsed = parseCommandLine(program, argv, io.env)
  } catch (e) {
    return reportError(program, e, io, undefined)
  }
  if (parsed.kind === 'help') { io.stdout.write(formatHelp(program, parsed.topic)); return EXIT_CODES.ok }
  if (parsed.kind === 'version') { io.stdout.write(`${program.version}\n`); return EXIT_CODES.ok }
  const { command, values, positionals } = parsed
  const json = values.json === true
  const ctx = makeContext(values, positionals, json, io, `${program.name} ${command.path.join(' ')}`)
  let result: CliResult | undefined
  try {
    result = await command.run(ctx)
  } catch (e) {
    return reportError(program, e, io, command.path)
  }
  if (result !== undefined && (result.value !== undefined || result.text !== undefined)) {
    if (json) io.stdout.write(JSON.stringify(result.value, jsonReplacer) + '\n')
    else {
      const text = result.text ?? JSON.stringify(result.value, jsonReplacer, 2)
      io.stdout.write((typeof text === 'string' ? text : text.join('\n')) + '\n')
    }
  }
  if (result?.failure !== undefined) {
    io.stderr.write(`${result.failure.code}: ${result.failure.message}\n`)
    return EXIT_CODES.failure
  }
  return EXIT_CODES.ok
}

/** The exit code of an error: 2 usage, 78 configuration, 1 anything else. */
export function exitCodeOf (program: Pick<CliProgram, 'configErrorCodes'>, e: unknown): number {
  const code = (e as { code?: unknown } | null)?.code
  if (code === 'USAGE') return EXIT_CODES.usage
  if (typeof code === 'string' && (COMMON_CONFIG_CODES.includes(code) || (program.configErrorCodes ?? []).includes(code))) return EXIT_CODES.config
  return EXIT_CODES.failure
}

/** `CODE: message` on one line (`usage: message` for usage errors; INTERNAL for errors without a code). */
export function formatErrorLine (e: unknown): string {
  const code = (e as { code?: unknown } | null)?.code
  const message = (e instanceof Error ? e.message : String(e)).replace(/\s*\n\s*/g, ' ')
  if (code === 'USAGE') return `usage: ${message}`
  return `${typeof code === 'string' && /^[A-Z][A-Z0-9_]*$/.test(code) ? code : 'INTERNAL'}: ${message}`
}

function reportError (program: CliProgram, e: unknown, io: CliIo, path: readonly string[] | undefined): number {
  io.stderr.write(formatErrorLine(e) + '\n')
  const exit = exitCodeOf(program, e)
  if (exit === EXIT_CODES.usage) io.stderr.write(`Run \`${program.name}${path !== undefined ? ' ' + path.join(' ') : ''} --help\` for usage.\n`)
  return exit
}

function makeContext (values: CliValues, positionals: string[], json: boolean, io: CliIo, where: string): CliContext {
  const string = (name: string): string | undefined => {
    const v = values[name]
    if (v === undefined) return undefined
    if (typeof v !== 'string') throw new UsageError(`${where}: --${name} needs one value`)
    return v
  }
  return {
    values,
    positionals,
    json,
    dryRun: values['dry-run'] === true,
    io,
    progress: (message) => { io.stderr.write(message + '\n') },
    string,
    required: (name) => {
      const v = string(name)
      if (v === undefined || v === '') throw new UsageError(`${where}: --${name} is required`)
      return v
    },
    list: (name) => {
      const v = values[name]
      return v === undefined ? [] : Array.isArray(v) ? v : typeof v === 'string' ? [v] : []
    },
    flag: (name) => values[name] === true
  }
}

/** bigint and byte arrays in results print as decimal strings and hex. */
function jsonReplacer (_key: string, value: unknown): unknown {
  if (typeof value === 'bigint') return value.toString()
  if (value instanceof Uint8Array) return Buffer.from(value).toString('hex')
  return value
}

/** For a bin's entry: runs the program on the process, sets the exit code once stdout drained. */
export async function runMain (program: CliProgram): Promise<void> {
  const code = await runProgram(program, process.argv.slice(2), { env: process.env, stdout: process.stdout, stderr: process.stderr })
  // Exit explicitly: open sockets (RPC, MQTT) of a failed command must not hold the process;
  // wait for stdout first so a piped result is complete.
  process.stdout.write('', () => process.exit(code))
}

