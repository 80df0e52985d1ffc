// One CLI convention for every bin (issue 10 item 6), spawned as a user would through the package's
// launchers: --help on stdout with exit 0, --version, an unknown command or option exits 2 with
// one `usage: ` line and nothing on stdout, a missing config file exits 78.
import t from 'tap'
import { spawn } from 'node:child_process'
import { readFile } from 'node:fs/promises'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import { makeTempDir } from '../helpers/tmp.js'
import { processSlots } from '../helpers/semaphore.js'

const ROOT = resolve(fileURLToPath(import.meta.url), '../../..')
const pkg = JSON.parse(await readFile(join(ROOT, 'package.json'), 'utf8')) as { version: string, bin: Record<string, string> }
/** The environment of a user who has set nothing of ours. */
const BASE_ENV = Object.fromEntries(Object.entries(process.env).filter(([k]) => !k.startsWith('PROVENANCE_') && k !== 'STATE_DIRECTORY'))

interface Run { code: number | null, stdout: string, stderr: string }

// Processes beyond the shared slots wait their turn (a semaphore, not a timer): the machine may be small or busy.
async function bin (name: string, args: string[], cwd: string): Promise<Run> {
  return await processSlots.run(async () => {
    const child = spawn(process.execPath, [join(ROOT, pkg.bin[name] as string), ...args], { cwd, env: BASE_ENV, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (s: string) => { stdout += s })
    child.stderr.setEncoding('utf8').on('data', (s: string) => { stderr += s })
    const code = await new Promise<number | null>(resolve => child.on('close', resolve))
    return { code, stdout, stderr }
  })
}

/** Bins on the shared scaffold, a command of each that reads a config file, and one of its commands. */
const SCAFFOLD_BINS: Array<{ name: string, command: string[], configCommand: string[] | undefined }> = [
  { name: 'provenance-agent', command: ['verify-log'], configCommand: ['status', '--config'] },
  { name: 'provenance-gateway', command: ['log-key'], configCommand: ['log-key', '--config'] },
  { name: 'provenance-fleet', command: ['device', 'register'], configCommand: undefined },
  { name: 'provenance', command: ['verify'], configCommand: undefined }
]

t.test('behavior: every bin on the scaffold follows the convention: help, version, usage errors, a missing config', async t => {
  const cwd = await makeTempDir(t, 'prov-convention-')
  await Promise.all(SCAFFOLD_BINS.map(async ({ name, command, configCommand }) => {
    const [help, commandHelp, version, unknown, badOption, missingConfig] = await Promise.all([
      bin(name, ['--help'], cwd),
      bin(name, [...command, '--help'], cwd),
      bin(name, ['--version'], cwd),
      bin(name, ['frobnicate'], cwd),
      bin(name, [...command, '--frobnicate'], cwd),
      configCommand === undefined ? Promise.resolve(undefined) : bin(name, [...configCommand, join(cwd, 'missing.json')], cwd)
    ])
    for (const [what, r] of [['--help', help], [`${command.join(' ')} --help`, commandHelp]] as const) {
      t.equal(r.code, 0, `${name} ${what}: exit 0`)
      t.match(r.stdout, /^Usage: /, `${name} ${what}: on stdout`)
      t.match(r.stdout, /Exit codes:[\s\S]*0 +ok[\s\S]*1 +failure[\s\S]*2 +usage[\s\S]*78 +configuration/, `${name} ${what}: the exit-code table`)
      t.equal(r.stderr, '', `${name} ${what}: nothing on stderr`)
    }
    t.match(commandHelp.stdout, /--json\b/, `${name}: --json on a command`)
    t.same([version.code, version.stdout], [0, `${pkg.version}\n`], `${name} --version`)
    for (const [what, r] of [['unknown command', unknown], ['unknown option', badOption]] as const) {
      t.equal(r.code, 2, `${name} ${what}: exit 2`)
      t.match(r.stderr, /^usage: /, `${name} ${what}: one usage: line`)
      t.equal(r.stdout, '', `${name} ${what}: nothing on stdout`)
    }
    if (missingConfig !== undefined) {
      t.equal(missingConfig.code, 78, `${name}: a missing config file exits 78`)
      t.match(missingConfig.stderr, /^CONFIG_[A-Z]+: .*missing\.json/, `${name}: names the file`)
      t.equal(missingConfig.stdout, '')
    }
  }))
})

// On the scaffold too (above); it reads no config file. Its commands (replay and the lineage groups
// among them) are listed in its help, and a bad option after a positional is still refused.
t.test('behavior: provenance (forensics) prints --help on stdout, --version, and one usage: line with exit 2', async t => {
  const cwd = await makeTempDir(t, 'prov-convention-')
  const help = await bin('provenance', ['--help'], cwd)
  t.equal(help.code, 0)
  t.match(help.stdout, /^Usage: provenance <command>/)
  t.match(help.stdout, /^ {2}replay {2,}/m)
  t.equal(help.stderr, '')
  const version = await bin('provenance', ['--version'], cwd)
  t.same([version.code, version.stdout], [0, `${pkg.version}\n`])
  for (const args of [['frobnicate'], ['verify', 'b.json', '--offline', '--frobnicate']]) {
    const r = await bin('provenance', args, cwd)
    t.equal(r.code, 2, args.join(' '))
    t.match(r.stderr, /^usage: /, `${args.join(' ')}: one usage: line`)
    t.equal(r.stdout, '')
  }
})
