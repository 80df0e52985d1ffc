/**
 * Sorting chain failures into AnchorError codes: transport trouble (retry with backoff), node
 * errors, contract reverts (decoded with the registry ABI) and broadcast refusals. Also the
 * per-call timeout, since ethers' own request timeout is five minutes.
 */
import { isError } from 'ethers'
import { decodeRegistryRevert, type DecodedRevert } from '../../contracts/index.js'
import { AnchorError, type AnchorErrorCode } from './errors.js'

const TRANSPORT_CODES = new Set([
  'ECONNREFUSED', 'ECONNRESET', 'ETIMEDOUT', 'EPIPE', 'ENOTFOUND', 'EAI_AGAIN', 'EHOSTUNREACH', 'ENETUNREACH',
  'UND_ERR_SOCKET', 'UND_ERR_CONNECT_TIMEOUT', 'UND_ERR_HEADERS_TIMEOUT', 'UND_ERR_BODY_TIMEOUT',
  // ethers: request timed out, network down, or an HTTP-level failure (5xx, bad gateway)
  'TIMEOUT', 'NETWORK_ERROR', 'SERVER_ERROR',
  // ours (withTimeout, fetchChainId), once already classified
  'ANCHOR_RPC_UNREACHABLE'
])

/** Walks `cause` (and ethers' `error`) links; ethers and RegistryError wrap the socket error. */
function * causes (e: unknown): Generator<Record<string, unknown>> {
  const seen = new Set<unknown>()
  let cur: unknown = e
  while (typeof cur === 'object' && cur !== null && !seen.has(cur)) {
    seen.add(cur)
    const o = cur as Record<string, unknown>
    yield o
    cur = o.cause ?? o.error
  }
}

/** True when `e` means the endpoint did not answer at all (as opposed to answering with an error). */
export function isTransportError (e: unknown): boolean {
  for (const c of causes(e)) {
    if (typeof c.code === 'string' && TRANSPORT_CODES.has(c.code)) return true
    if (c.name === 'TimeoutError' || c.name === 'AbortError') return true
    if (typeof c.message === 'string' && /fetch failed|socket hang up|other side closed/i.test(c.message)) return true
  }
  return false
}

/** The registry custom error inside `e` (possibly wrapped by RegistryError), if any. */
export function findRevert (e: unknown): DecodedRevert | undefined {
  for (const c of causes(e)) {
    const revert = (c as { revert?: unknown }).revert
    if (typeof revert === 'object' && revert !== null && typeof (revert as DecodedRevert).name === 'string' &&
      Array.isArray((revert as DecodedRevert).args)) return revert as DecodedRevert
    const decoded = decodeRegistryRevert(c)
    if (decoded !== undefined) return decoded
  }
  return undefined
}

/** Any failure of a chain call as an AnchorError (transport → ANCHOR_RPC_UNREACHABLE). */
export function toAnchorError (e: unknown, what: string): AnchorError {
  if (e instanceof AnchorError) return e
  const message = shortMessage(e)
  if (isTransportError(e)) return new AnchorError('ANCHOR_RPC_UNREACHABLE', `${what}: RPC unreachable: ${message}`, { cause: e })
  const revert = findRevert(e)
  if (revert?.name === 'AccessControlUnauthorizedAccount') {
    return new AnchorError('ANCHOR_UNAUTHORIZED', `${what}: the anchorer account lacks ANCHORER_ROLE`, { cause: e })
  }
  if (revert !== undefined || isError(e, 'CALL_EXCEPTION')) {
    return new AnchorError('ANCHOR_REVERTED', `${what}: reverted${revert === undefined ? '' : ` (${revert.name})`}: ${message}`, { cause: e })
  }
  return new AnchorError('ANCHOR_RPC_FAILED', `${what}: ${message}`, { cause: e })
}

/** Broadcast refusals get their own codes so metrics can tell "no gas money" from "node down". */
export function toBroadcastError (e: unknown): AnchorError {
  if (isTransportError(e)) return toAnchorError(e, 'broadcast')
  let code: AnchorErrorCode = 'ANCHOR_BROADCAST_FAILED'
  if (isError(e, 'INSUFFICIENT_FUNDS') || /insufficient funds/i.test(shortMessage(e))) code = 'ANCHOR_INSUFFICIENT_FUNDS'
  return new AnchorError(code, `broadcast refused: ${shortMessage(e)}`, { cause: e })
}

/** The node already has this very transaction: a re-broadcast is then a success. */
export function isAlreadyKnown (e: unknown): boolean {
  return /already known|already imported|known transaction|already in (the )?(mem)?pool/i.test(allMessages(e))
}

/** The nonce was used already (the tx, or another one with this nonce, is mined). */
export function isNonceUsed (e: unknown): boolean {
  return isError(e, 'NONCE_EXPIRED') || /nonce too low|nonce has already been used/i.test(allMessages(e))
}

function allMessages (e: unknown): string {
  const parts: string[] = []
  for (const c of causes(e)) {
    for (const k of ['shortMessage', 'message']) if (typeof c[k] === 'string') parts.push(c[k])
  }
  return parts.join(' | ')
}

function shortMessage (e: unknown): string {
  const o = e as { shortMessage?: unknown, message?: unknown } | null
  const m = typeof o?.shortMessage === 'string' ? o.shortMessage : typeof o?.message === 'string' ? o.message : String(e)
  return m.length > 300 ? m.slice(0, 300) + '…' : m
}

/**
 * Resolves like `promise`, or rejects with ANCHOR_RPC_UNREACHABLE after `ms`: one hung node must
 * not stall the loop (or close()) for ethers' five-minute default.
 */
export async function withTimeout<T> (promise: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined
  const timeout = new Promise<never>((_resolve, reject) => {
    timer = setTimeout(() => reject(new AnchorError('ANCHOR_RPC_UNREACHABLE', `${what}: no answer in ${ms} ms`)), ms)
  })
  try {
    return await Promise.race([promise, timeout])
  } catch (e) {
    throw toAnchorError(e, what)
  } finally {
    clearTimeout(timer)
  }
}

/**
 * eth_chainId with a plain fetch: an ethers provider without a known network logs and retries
 * detection every second for as long as the node is down, which is the wrong place for a retry loop.
 * @throws AnchorError ANCHOR_RPC_UNREACHABLE, ANCHOR_RPC_FAILED
 */
export async function fetchChainId (rpcUrl: string, timeoutMs: number): Promise<number> {
  let body: { result?: unknown, error?: { message?: unknown } }
  try {
    const res = await fetch(rpcUrl, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ jsonrpc: '2.0', id: 1, method: 'eth_chainId', params: [] }),
      signal: AbortSignal.timeout(timeoutMs)
    })
    if (res.status >= 500) throw new AnchorError('ANCHOR_RPC_UNREACHABLE', `eth_chainId: HTTP ${res.status}`)
    body = await res.json() as typeof body
  } catch (e) {
    throw toAnchorError(e, 'eth_chainId')
  }
  const id = typeof body.result === 'string' ? Number.parseInt(body.result, 16) : NaN
  if (!Number.isSafeInteger(id) || id <= 0) {
    throw new AnchorError('ANCHOR_RPC_FAILED', `eth_chainId: unexpected answer ${JSON.stringify(body).slice(0, 200)}`)
  }
  return id
}
