/**
 * The tally of one verification: the counts, the failures and warnings (capped at maxFindings,
 * counts exact) and which records failed. The checks report into it; the verdict reads it.
 */
import type { FailureReason, Finding, FindingReason, WarningReason } from './reasons.js'
import type { VerifyCounts } from './verify-bundle.js'

export const DEFAULT_MAX_FINDINGS = 1000

/** Where a check reports what it found: `judged` false counts the finding as outside the window. */
export interface FindingSink {
  fail: (reason: FailureReason, judged: boolean, finding: Omit<Finding, 'reason'>) => void
  warn: (reason: WarningReason, judged: boolean, finding: Omit<Finding, 'reason'>) => void
}

export class Findings implements FindingSink {
  readonly counts: VerifyCounts
  readonly reasons: Partial<Record<FindingReason, number>> = {}
  readonly failures: Finding[] = []
  readonly warnings: Finding[] = []
  /** True when `failures` or `warnings` stopped at maxFindings. */
  truncated = false
  /** Per record index: 1 when a judged failure names it. */
  private readonly failed: Uint8Array
  private readonly maxFindings: number

  constructor (records: number, maxFindings: number) {
    this.maxFindings = maxFindings
    this.failed = new Uint8Array(records)
    this.counts = {
      records, judged: 0, malformed: 0, signaturesChecked: 0, signaturesValid: 0, chainLinked: 0, proofsChecked: 0, proofsValid: 0,
      anchors: 0, models: 0, recordsFailed: 0, failures: 0, warnings: 0, notJudged: 0
    }
  }

  fail (reason: FailureReason, judged: boolean, finding: Omit<Finding, 'reason'>): void {
    if (!judged) { this.counts.notJudged++; return }
    this.reasons[reason] = (this.reasons[reason] ?? 0) + 1
    this.counts.failures++
    if (finding.index !== undefined) this.failed[finding.index] = 1
    if (this.failures.length < this.maxFindings) this.failures.push({ reason, ...finding })
    else this.truncated = true
  }

  warn (reason: WarningReason, judged: boolean, finding: Omit<Finding, 'reason'>): void {
    if (!judged) { this.counts.notJudged++; return }
    this.reasons[reason] = (this.reasons[reason] ?? 0) + 1
    this.counts.warnings++
    if (this.warnings.length < this.maxFindings) this.warnings.push({ reason, ...finding })
    else this.truncated = true
  }

  /** Judged records with at least one failure. */
  recordsFailed (): number {
    let n = 0
    for (const f of this.failed) n += f
    return n
  }
}

/** Findings in seq order (stable: a record's findings keep the order they were found in); bundle-level ones last. */
export function bySeq (findings: Finding[]): Finding[] {
  return [...findings].sort((a, b) => (a.seq ?? Infinity) - (b.seq ?? Infinity))
}
