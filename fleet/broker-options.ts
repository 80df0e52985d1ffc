/**
 * The --mosquitto-acl / --mosquitto-passwd / --mqtt-password-file trio: checks that they come
 * together, finds or generates the user's password, and writes the entries (nothing in a dry run).
 */
import { randomBytes } from 'node:crypto'
import { promises as fs } from 'node:fs'
import { readSecret, UsageError, writeFileAtomic, type CliContext } from '../common/index.js'
import { assertBrokerUsername, upsertBrokerUser, type BrokerRole, type BrokerUserChange } from './broker-files.js'
import { FleetError } from './errors.js'

export interface BrokerPlan {
  aclPath?: string
  passwdPath?: string
  passwordFile?: string
}

/** The broker options of the command line, checked (before any chain call). @throws UsageError, FleetError */
export function brokerPlanOf (ctx: CliContext, username: string): BrokerPlan | undefined {
  const aclPath = ctx.string('mosquitto-acl')
  const passwdPath = ctx.string('mosquitto-passwd')
  const passwordFile = ctx.string('mqtt-password-file')
  if (aclPath === undefined && passwdPath === undefined) {
    if (passwordFile !== undefined) throw new UsageError('--mqtt-password-file goes with --mosquitto-passwd')
    return undefined
  }
  if (passwdPath !== undefined && passwordFile === undefined) throw new UsageError('--mosquitto-passwd needs --mqtt-password-file (read when it exists, generated otherwise)')
  assertBrokerUsername(username)
  return { ...(aclPath !== undefined ? { aclPath } : {}), ...(passwdPath !== undefined ? { passwdPath, passwordFile } : {}) }
}

/** Writes the user's broker entries as planned; reports what it wrote (or would write). */
export async function applyBrokerPlan (ctx: CliContext, plan: BrokerPlan, username: string, role: BrokerRole): Promise<BrokerUserChange & { passwordGenerated?: boolean }> {
  let password: string | undefined
  let generated = false
  if (plan.passwdPath !== undefined && plan.passwordFile !== undefined) {
    const exists = await fs.stat(plan.passwordFile).then(() => true, (e: NodeJS.ErrnoException) => {
      if (e.code === 'ENOENT') return false
      throw new FleetError('FLEET_FILE_UNWRITABLE', `cannot read ${plan.passwordFile ?? ''}: ${e.message}`, { cause: e })
    })
    if (exists) {
      password = await readSecret({ file: plan.passwordFile, what: 'MQTT password' })
    } else {
      // 32 random bytes: a password no dictionary has; base64url keeps it one word in any config.
      password = randomBytes(32).toString('base64url')
      generated = true
      if (!ctx.dryRun) await writeFileAtomic(plan.passwordFile, password + '\n', { mode: 0o600 })
    }
  }
  const change = await upsertBrokerUser({ username, role, ...plan, ...(password !== undefined ? { password } : {}), dryRun: ctx.dryRun })
  return { ...change, ...(plan.passwdPath !== undefined ? { passwordGenerated: generated } : {}) }
}
