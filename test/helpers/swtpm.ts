/**
 * A real software TPM 2.0 (Debian's swtpm) for tests and benches: its own state folder, free
 * loopback ports, started powered on (no tpm2_startup needed), killed by pid when stopped.
 * `tcti` is what tpm2-tools take in TPM2TOOLS_TCTI.
 */
import { spawn, type ChildProcess } from 'node:child_process'
import { mkdtemp, rm } from 'node:fs/promises'
import { connect, createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { freePort } from './mosquitto.js'

export interface Swtpm {
  tcti: string
  /** The TPM's own state (its seeds: what makes it this TPM and no other). */
  stateDir: string
  close: () => Promise<void>
}

async function reachable (port: number): Promise<boolean> {
  return await new Promise<boolean>(resolve => {
    const s = connect(port, '127.0.0.1')
    s.once('connect', () => { s.destroy(); resolve(true) })
    s.once('error', () => resolve(false))
  })
}

async function canListen (port: number): Promise<boolean> {
  return await new Promise<boolean>(resolve => {
    const server = createServer()
    server.once('error', () => resolve(false))
    server.listen(port, '127.0.0.1', () => server.close(() => resolve(true)))
  })
}

// tpm2-tools' swtpm TCTI talks to the control channel on the command port + 1.
async function adjacentFreePorts (): Promise<[number, number]> {
  for (let i = 0; i < 50; i++) {
    const port = await freePort()
    if (port < 65535 && await canListen(port + 1)) return [port, port + 1]
  }
  throw new Error('no two adjacent free ports on loopback')
}

/** Starts a fresh swtpm; each one has its own seeds, so each is another "device". */
export async function startSwtpm (): Promise<Swtpm> {
  const stateDir = await mkdtemp(join(tmpdir(), 'prov-swtpm-'))
  const [port, ctrl] = await adjacentFreePorts()
  let output = ''
  const proc: ChildProcess = spawn('swtpm', [
    'socket', '--tpm2', '--server', `type=tcp,port=${port},bindaddr=127.0.0.1`, '--ctrl', `type=tcp,port=${ctrl},bindaddr=127.0.0.1`,
    '--tpmstate', `dir=${stateDir}`, '--flags', 'not-need-init,startup-clear'
  ], { stdio: ['ignore', 'ignore', 'pipe'] })
  proc.stderr?.on('data', (d: Buffer) => { output = (output + d.toString()).slice(-4000) })
  const close = async (): Promise<void> => {
    if (proc.exitCode === null && proc.signalCode === null) {
      await new Promise<void>(resolve => { proc.once('exit', () => resolve()); proc.kill('SIGKILL') })
    }
    await rm(stateDir, { recursive: true, force: true })
  }
  const deadline = Date.now() + 10_000
  while (!(await reachable(port))) {
    if (proc.exitCode !== null || Date.now() > deadline) {
      await close()
      throw new Error(`swtpm did not listen on ${port}: ${output}`)
    }
    await new Promise(resolve => setTimeout(resolve, 25))
  }
  return { tcti: `swtpm:host=127.0.0.1,port=${port}`, stateDir, close }
}
