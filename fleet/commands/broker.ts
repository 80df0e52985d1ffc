/**
 * `provenance-fleet broker add-user | remove-user`: Mosquitto users for the gateway, the policy
 * publisher or a device, when they are not written by `device register` / `gateway register`.
 */
import { UsageError, type CliCommandSpec } from '../../common/index.js'
import { BROKER_ROLES, aclLines, removeBrokerUser, type BrokerRole } from '../broker-files.js'
import { applyBrokerPlan, brokerPlanOf } from '../broker-options.js'
import { BROKER_FILES, MOSQUITTO_ACL, MOSQUITTO_PASSWD } from '../options.js'

const USERNAME = { name: 'username', type: 'string', value: '<name>', description: 'The broker user (a device\'s is its device id).' } as const

export const BROKER_COMMANDS: readonly CliCommandSpec[] = [
  {
    path: ['broker', 'add-user'],
    summary: 'Add or replace a Mosquitto user (ACL block and password line) for a device, the gateway or the policy publisher.',
    description: [
      'Roles: device — write prov/v1/<name>/records and /status, read prov/v1/<name>/ack and /policy; gateway — read prov/v1/+/records and /status, read and write prov/v1/+/ack; publisher — read and write prov/v1/+/policy. Reload Mosquitto afterwards (SIGHUP) so it rereads the files.'
    ],
    options: [USERNAME, { name: 'role', type: 'string', value: '<device|gateway|publisher>', description: 'What the user may do.' }, ...BROKER_FILES],
    mutating: true,
    run: async (ctx) => {
      const username = ctx.required('username')
      const role = ctx.required('role')
      if (!(BROKER_ROLES as readonly string[]).includes(role)) throw new UsageError(`--role must be one of ${BROKER_ROLES.join(', ')}`)
      const plan = brokerPlanOf(ctx, username)
      if (plan === undefined) throw new UsageError('give --mosquitto-acl and/or --mosquitto-passwd')
      const change = await applyBrokerPlan(ctx, plan, username, role as BrokerRole)
      return { value: { dryRun: ctx.dryRun, username, role, ...change }, text: [`${ctx.dryRun ? 'dry run: would add' : 'added'} ${role} user ${username}`, ...aclLines(username, role as BrokerRole).slice(1).map(l => `  ${l}`)] }
    }
  },
  {
    path: ['broker', 'remove-user'],
    summary: 'Remove a Mosquitto user\'s ACL block and password line.',
    options: [USERNAME, MOSQUITTO_ACL, MOSQUITTO_PASSWD],
    mutating: true,
    run: async (ctx) => {
      const username = ctx.required('username')
      const aclPath = ctx.string('mosquitto-acl')
      const passwdPath = ctx.string('mosquitto-passwd')
      if (aclPath === undefined && passwdPath === undefined) throw new UsageError('give --mosquitto-acl and/or --mosquitto-passwd')
      const removed = await removeBrokerUser({ username, ...(aclPath !== undefined ? { aclPath } : {}), ...(passwdPath !== undefined ? { passwdPath } : {}), dryRun: ctx.dryRun })
      return { value: { dryRun: ctx.dryRun, username, removed }, text: `${ctx.dryRun ? 'dry run: would remove' : 'removed'} ${username}: ACL block ${removed.acl ? 'found' : 'not found'}, password line ${removed.passwd ? 'found' : 'not found'}` }
    }
  }
]
