/**
 * Waiting for a transaction's receipt without ethers' lost-receipt race.
 *
 * ethers v6's `tx.wait()` asks for the receipt once, then only again on each block newer than the
 * one its block poller saw first. A node that mines the transaction between those two moments
 * (anvil's automine does: the hash comes back before the block is sealed) leaves the receipt in a
 * block the poller counts as already seen; on a chain where nothing else is mined, `wait()` then
 * never returns. This asks for the receipt itself at the provider's polling interval until it is
 * there. A transaction whose nonce the chain has passed without a receipt for a few asks was
 * replaced (another sender with the same key): `wait()` is asked then, for ethers' verdict.
 */
import type { ContractTransactionReceipt, ContractTransactionResponse, TransactionReceipt, TransactionResponse } from 'ethers'

/** Poll interval when the provider names none (ethers' JsonRpcProvider default is 4 s). */
const FALLBACK_POLL_MS = 250
/** Asks with the nonce passed and no receipt before the transaction counts as replaced. */
const ASKS_BEFORE_REPLACED = 3

/**
 * The receipt of `tx` once mined, as `tx.wait()` gives it: a reverted transaction rejects with
 * ethers' CALL_EXCEPTION, a replaced one with TRANSACTION_REPLACED, a failed request with its error
 * (as `wait()`'s own first request does).
 */
export async function waitForReceipt (tx: ContractTransactionResponse): Promise<ContractTransactionReceipt>
export async function waitForReceipt (tx: TransactionResponse): Promise<TransactionReceipt>
export async function waitForReceipt (tx: TransactionResponse): Promise<TransactionReceipt> {
  const interval = pollInterval(tx)
  let passed = 0
  for (;;) {
    // wait(0) asks once and answers at once: the receipt (a revert thrown, as wait() does) or null.
    const receipt = await tx.wait(0)
    if (receipt !== null) return receipt
    if (await tx.provider.getTransactionCount(tx.from, 'latest') > tx.nonce && ++passed > ASKS_BEFORE_REPLACED) {
      const final = await tx.wait()
      if (final === null) throw new Error(`transaction ${tx.hash}: no receipt`)
      return final
    }
    await new Promise(resolve => setTimeout(resolve, interval))
  }
}

function pollInterval (tx: TransactionResponse): number {
  const ms = (tx.provider as { pollingInterval?: unknown }).pollingInterval
  return typeof ms === 'number' && ms > 0 ? ms : FALLBACK_POLL_MS
}
