/**
 * Capped exponential backoff with jitter, the one retry pause of every service (the agent's uplink
 * reconnects, the gateway's anchorer retries): jitter keeps a fleet that lost the same broker or node
 * from coming back in lockstep.
 */

export interface BackoffOptions {
  /** Pause after the first failure before jitter, ms. */
  initialMs: number
  /** Longest pause before jitter, ms (the pause doubles up to it). */
  maxMs: number
  /**
   * `'full'`: a pause drawn from [initialMs / 2, initialMs / 2 + cap] (reconnects: spreads a fleet
   * widely); a number `s` in [0, 1): the cap times a factor drawn from [1 − s, 1 + s] (retries of one
   * process: keeps the pause near its schedule).
   */
  jitter: 'full' | number
}

/**
 * The pause before retry number `attempt` (0 for the first retry after the first failure), ms.
 * @param random a [0, 1) source, for tests; default Math.random.
 */
export function backoffDelayMs (attempt: number, options: BackoffOptions, random: () => number = Math.random): number {
  // 2 ** 30 × any sane initial pause is far past any cap: the exponent stops there to stay finite.
  const cap = Math.min(options.maxMs, options.initialMs * 2 ** Math.min(Math.max(attempt, 0), 30))
  if (options.jitter === 'full') return Math.round(options.initialMs / 2 + random() * cap)
  return Math.round(cap * (1 - options.jitter + 2 * options.jitter * random()))
}
