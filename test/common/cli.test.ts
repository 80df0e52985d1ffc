// The shared CLI scaffold (common/cli) on a small program: help on stdout, --version, --json,
// --dry-run only where something changes, one error line per failure and the exit-code table.
import t from 'tap'
import {
  CommonError, EXIT_CODES, UsageError, formatErrorLine, parseCommandLine, runProgram, type CliIo, type CliProgram
} from '../../common/index.js'
import { ProvenanceError } from '../../protocol/index.js'

class DemoError extends ProvenanceError<'DEMO_BROKEN' | 'DEMO_CONFIG'> {}

const calls: Array<{ dryRun: boolean, values: Record<string, unknown>, positionals: readonly string[] }> = []
const PROGRAM: CliProgram = {
  name: 'demo',
  version: '9.8.7',
  summary: 'A demo program.',
  configErrorCodes: ['DEMO_CONFIG'],
  commonOptions: [{ name: 'endpoint', type: 'string', value: '<url>', env: 'DEMO_ENDPOINT', description: 'Where to go.' }],
  commands: [
    {
      path: ['thing', 'make'],
      summary: 'Make a thing.',
      mutating: true,
      options: [{ name: 'name', type: 'string', value: '<name>', description: 'Its name.' }, { name: 'tag', type: 'string', multiple: true, description: 'A tag.' }],
      run: async (ctx) => {
        calls.push({ dryRun: ctx.dryRun, values: { ...ctx.values }, positionals: ctx.positionals })
        const name = ctx.required('name')
        ctx.progress(`making ${name}`)
        return { value: { name, tags: ctx.list('tag'), size: 10n ** 20n, bytes: new Uint8Array([1, 255]), dryRun: ctx.dryRun }, text: `made ${name}` }
      }
    },
    { path: ['thing', 'show'], summary: 'Show a thing.', positionals: [{ name: 'id', description: 'Which.', required: true }], run: async (ctx) => ({ value: { id: ctx.positionals[0] } }) },
    { path: ['fail'], summary: 'Fails.', options: [{ name: 'how', type: 'string', description: 'broken|config|secret|plain' }], run: async (ctx) => {
      const how = ctx.string('how')
      if (how === 'config') throw new DemoError('DEMO_CONFIG', 'bad config\nover two lines')
      if (how === 'secret') throw new CommonError('SECRET_INSECURE', 'key file is world-readable')
      if (how === 'plain') throw new Error('oops')
      if (how === 'usage') throw new UsageError('--how is wrong')
      throw new DemoError('DEMO_BROKEN', 'it broke')
    } }
  ]
}

async function run (argv: string[], env: Record<string, string> = {}): Promise<{ code: number, stdout: string, stderr: string }> {
  let stdout = ''
  let stderr = ''
  const io: CliIo = { env, stdout: { write: (s) => { stdout += String(s) } }, stderr: { write: (s) => { stderr += String(s) } } }
  const code = await runProgram(PROGRAM, argv, io)
  return { code, stdout, stderr }
}

t.test('behavior: --help of the program, a group and a command goes to stdout and exits 0', async t => {
  for (const args of [['--help'], ['-h'], ['help'], ['thing', '--help'], ['thing', 'make', '--help'], ['help', 'thing', 'make'], ['thing', 'make', '--bogus', '--help']]) {
    const r = await run(args)
    t.equal(r.code, EXIT_CODES.ok, args.join(' '))
    t.equal(r.stderr, '', `${args.join(' ')}: nothing on stderr`)
    t.match(r.stdout, /^Usage: demo /, args.join(' '))
    t.match(r.stdout, /Exit codes:[\s\S]*78/, `${args.join(' ')}: the exit-code table`)
  }
  const make = await run(['thing', 'make', '--help'])
  for (const o of ['--name', '--tag', '--endpoint', '--dry-run', '--json', '--help']) t.match(make.stdout, o, `make lists ${o}`)
  t.match(make.stdout, /\$DEMO_ENDPOINT/, 'the environment fallback is documented')
  t.notMatch((await run(['thing', 'show', '--help'])).stdout, /--dry-run/, 'a read-only command takes no --dry-run')
})

t.test('behavior: --version prints the version alone on stdout', async t => {
  t.same(await run(['--version']), { code: 0, stdout: '9.8.7\n', stderr: '' })
})

t.test('behavior: results go to stdout (text, or JSON with --json), progress to stderr', async t => {
  const text = await run(['thing', 'make', '--name', 'a'])
  t.same(text, { code: 0, stdout: 'made a\n', stderr: 'making a\n' })
  const json = await run(['thing', 'make', '--name', 'a', '--tag', 'x', '--tag', 'y', '--json'])
  t.equal(json.code, 0)
  t.same(JSON.parse(json.stdout), { name: 'a', tags: ['x', 'y'], size: '100000000000000000000', bytes: '01ff', dryRun: false }, 'bigint as decimal, bytes as hex')
  t.same(JSON.parse((await run(['thing', 'show', 'k7'])).stdout), { id: 'k7' }, 'without text, the value prints as JSON')
})

t.test('behavior: --dry-run reaches the command; the environment fills an absent option', async t => {
  calls.length = 0
  await run(['thing', 'make', '--name', 'a', '--dry-run'], { DEMO_ENDPOINT: 'http://env' })
  await run(['thing', 'make', '--name', 'a', '--endpoint', 'http://flag'], { DEMO_ENDPOINT: 'http://env' })
  t.equal(calls[0]?.dryRun, true)
  t.equal(calls[0]?.values.endpoint, 'http://env')
  t.equal(calls[1]?.dryRun, false)
  t.equal(calls[1]?.values.endpoint, 'http://flag', 'the command line wins over the environment')
})

t.test('error: usage errors exit 2 with one "usage: " line and a pointer to --help, and run nothing', async t => {
  calls.length = 0
  const cases: Array<[string[], RegExp]> = [
    [[], /^usage: a command is needed/],
    [['nope'], /^usage: unknown command "nope"/],
    [['thing'], /^usage: thing needs a subcommand: make, show/],
    [['thing', 'nope'], /^usage: unknown subcommand "thing nope"/],
    [['thing', 'make', '--bogus'], /^usage: demo thing make: Unknown option '--bogus'/],
    [['thing', 'make', '--name'], /^usage: demo thing make: Option '--name <value>' argument missing/],
    [['thing', 'make', 'extra'], /^usage: demo thing make: Unexpected argument 'extra'|^usage: .*extra/],
    [['thing', 'make'], /^usage: demo thing make: --name is required/],
    [['thing', 'show'], /^usage: demo thing show: <id> is required/],
    [['thing', 'show', 'a', 'b'], /^usage: demo thing show: unexpected argument "b"/],
    [['thing', 'show', 'a', '--dry-run'], /^usage: .*--dry-run/],
    [['fail', '--how', 'usage'], /^usage: --how is wrong/]
  ]
  for (const [args, first] of cases) {
    const r = await run(args)
    t.equal(r.code, EXIT_CODES.usage, args.join(' '))
    t.equal(r.stdout, '', `${args.join(' ')}: nothing on stdout`)
    const lines = r.stderr.trimEnd().split('\n')
    t.match(lines[0], first, args.join(' '))
    t.match(lines[1], /^Run `demo.* --help` for usage\.$/, `${args.join(' ')}: points to --help`)
    t.equal(lines.length, 2, `${args.join(' ')}: two lines`)
  }
  t.equal(calls.filter(c => c.values.name !== undefined).length, 0, 'no command ran with a value')
})

t.test('error: failures exit 1 with CODE: message; configuration codes exit 78; codeless errors say INTERNAL', async t => {
  t.same(await run(['fail']), { code: 1, stdout: '', stderr: 'DEMO_BROKEN: it broke\n' })
  t.same(await run(['fail', '--how', 'config']), { code: 78, stdout: '', stderr: 'DEMO_CONFIG: bad config over two lines\n' }, 'one line, even for a two-line message')
  t.same(await run(['fail', '--how', 'secret']), { code: 78, stdout: '', stderr: 'SECRET_INSECURE: key file is world-readable\n' })
  t.same(await run(['fail', '--how', 'plain']), { code: 1, stdout: '', stderr: 'INTERNAL: oops\n' })
  t.equal(formatErrorLine('text'), 'INTERNAL: text')
})

t.test('behavior: the parser finds commands from the spec alone', async t => {
  t.match(parseCommandLine(PROGRAM, ['thing', 'show', 'x']), { kind: 'command', positionals: ['x'] })
  t.match(parseCommandLine(PROGRAM, ['help', 'thing']), { kind: 'help', topic: 'thing' })
  t.throws(() => parseCommandLine(PROGRAM, ['help', 'nope']), { code: 'USAGE' })
})

t.test('behavior: a failure found by a command prints its result, then CODE: message, exit 1; variadic positionals; --json described by the command; repeated options refused when asked', async t => {
  const strict: CliProgram = {
    name: 'judge',
    version: '1.0.0',
    summary: 'Judges files.',
    rejectRepeatedOptions: true,
    commands: [{
      path: ['check'],
      summary: 'Check files.',
      positionals: [{ name: 'file', description: 'Files to check.', variadic: true }],
      options: [{ name: 'json', type: 'boolean', description: 'The findings as JSON.' }, { name: 'mode', type: 'string', description: 'How.' }],
      run: async (ctx) => {
        ctx.io.stdout.write(`checked ${ctx.positionals.join(',')}\n`)
        return ctx.positionals.includes('bad') ? { value: undefined, failure: { code: 'VERDICT_INVALID', message: '1 bad file' } } : undefined
      }
    }]
  }
  const io = (): { io: CliIo, out: () => string, err: () => string } => {
    let stdout = ''
    let stderr = ''
    return { io: { env: {}, stdout: { write: (s) => { stdout += String(s) } }, stderr: { write: (s) => { stderr += String(s) } } }, out: () => stdout, err: () => stderr }
  }
  const bad = io()
  t.equal(await runProgram(strict, ['check', 'a', 'bad', 'c'], bad.io), EXIT_CODES.failure)
  t.equal(bad.out(), 'checked a,bad,c\n', 'the result, and nothing printed for an undefined value')
  t.equal(bad.err(), 'VERDICT_INVALID: 1 bad file\n')
  const good = io()
  t.equal(await runProgram(strict, ['check', 'a'], good.io), EXIT_CODES.ok)
  t.equal(good.err(), '')
  const twice = io()
  t.equal(await runProgram(strict, ['check', 'a', '--mode', 'x', '--mode', 'y'], twice.io), EXIT_CODES.usage)
  t.match(twice.err(), /^usage: judge check: --mode given twice\n/)
  const help = io()
  t.equal(await runProgram(strict, ['check', '--help'], help.io), EXIT_CODES.ok)
  t.match(help.out(), /^Usage: judge check \[options\] \[file\]\.\.\./)
  t.equal(help.out().match(/--json/g)?.length, 1, '--json listed once, with the command\'s description')
  t.match(help.out(), /--json +The findings as JSON\./)
  // The default stays node:util's: the last of a repeated option wins.
  t.match(parseCommandLine(PROGRAM, ['fail', '--how', 'a', '--how', 'b']), { kind: 'command', values: { how: 'b' } })
})
