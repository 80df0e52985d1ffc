/**
 * Broker and gateway URLs carry credentials (mqtt://user:pass@host): this is the one way they are
 * shown in status replies, logs and error messages.
 */

/** The URL without user name or password, for status replies and logs. */
export function redactUrl (url: string): string {
  try {
    const u = new URL(url)
    u.username = ''
    u.password = ''
    return u.toString()
  } catch {
    return '<invalid url>'
  }
}
