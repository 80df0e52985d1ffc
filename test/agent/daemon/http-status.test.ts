/**
 * The agent API's status codes: a log that refuses for now (full disk, reopening after a write
 * error) answers 507/503 like the budget, never 500 (issue 9: no 500 on any path).
 */
import t from 'tap'
import { HTTP_STATUS_BY_CODE } from '../../../agent/daemon/errors.js'

t.test('behavior: refusals of the record log map to 5xx codes a client can retry on, not 500', async t => {
  t.equal(HTTP_STATUS_BY_CODE.LOG_DISK_FULL, 507)
  t.equal(HTTP_STATUS_BY_CODE.LOG_UNAVAILABLE, 503)
  t.equal(HTTP_STATUS_BY_CODE.LOG_CLOSED, 503)
})
