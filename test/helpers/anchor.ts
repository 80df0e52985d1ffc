/**
 * Shared pieces of the anchorer tests: deterministic batches, polling with a deadline, an
 * anchorer bound to a test's lifetime, and chain-side checks ("this root is anchored exactly once").
 * (No tests here: tap lists this file as skipped.)
 */
import { createHash } from 'node:crypto'
import type { JsonRpcProvider } from 'ethers'
import type { Test } from 'tap'
import type { RegistryClient } from '../../contracts/index.js'
import { Anchorer, type AnchorerOptions, type SealedBatch } from '../../gateway/anchor/index.js'
import { makeTempDir } from './tmp.js'

function sha (text: string): Uint8Array {
  return new Uint8Array(createHash('sha256').update(text).digest())
}

/** Batch `id` of series `seed`: the same arguments always give the same batch. */
export function makeBatch (id: number, seed: string): SealedBatch {
  const first = 1_700_000_000_000 + id * 1000
  return {
    id,
    root: sha(`${seed}/root/${id}`),
    size: id * 3,
    firstRecordTimeMs: first,
    lastRecordTimeMs: first + 500,
    metadataHash: sha(`${seed}/checkpoint/${id}`)
  }
}

/** Polls `check` every 10 ms until it is true; fails after `timeoutMs`. */
export async function waitFor (check: () => boolean | Promise<boolean>, what: string, timeoutMs = 10_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  for (;;) {
    if (await check()) return
    if (Date.now() > deadline) throw new Error(`timed out after ${timeoutMs} ms waiting for ${what}`)
    await new Promise((resolve) => setTimeout(resolve, 10))
  }
}

/** Test-speed defaults: quick polls and a short backoff. */
export const FAST = { pollIntervalMs: 20, retryInitialMs: 50, retryMaxMs: 400, rpcTimeoutMs: 5_000 } as const

/** Opens an anchorer on a fresh (or the given) state folder; closed when the test ends. */
export async function openAnchorer (
  t: Test,
  options: Omit<AnchorerOptions, 'stateDir'> & { stateDir?: string }
): Promise<Anchorer> {
  const stateDir = options.stateDir ?? await makeTempDir(t, 'anchor-')
  const anchorer = await Anchorer.open({ ...FAST, ...options, stateDir })
  t.teardown(async () => await anchorer.close())
  return anchorer
}

/** Asserts that each batch's root is anchored exactly once on chain, with the batch's size. */
export async function assertAnchoredOnce (t: Test, registry: RegistryClient, batches: SealedBatch[]): Promise<void> {
  for (const b of batches) {
    const events = await registry.listAnchors({}, { root: b.root })
    t.equal(events.length, 1, `batch ${b.id}: one Anchored event for its root`)
    const stored = await registry.getAnchor(b.root)
    t.equal(stored?.size, BigInt(b.size), `batch ${b.id}: size on chain`)
  }
}

/** Transactions of `address` waiting in anvil's pool (txpool_content), by nonce. */
export async function pooledTxs (provider: JsonRpcProvider, address: string): Promise<Array<{ hash: string, nonce: number, maxPriorityFeePerGas: bigint }>> {
  const content = await provider.send('txpool_content', []) as { pending?: Record<string, Record<string, { hash: string, nonce: string, maxPriorityFeePerGas?: string }>> }
  const out: Array<{ hash: string, nonce: number, maxPriorityFeePerGas: bigint }> = []
  for (const [addr, byNonce] of Object.entries(content.pending ?? {})) {
    if (addr.toLowerCase() !== address.toLowerCase()) continue
    for (const tx of Object.values(byNonce)) {
      out.push({ hash: tx.hash, nonce: Number(tx.nonce), maxPriorityFeePerGas: BigInt(tx.maxPriorityFeePerGas ?? 0) })
    }
  }
  return out.sort((a, b) => a.nonce - b.nonce)
}
