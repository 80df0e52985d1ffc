/**
 * The verdict and the timeline as text for a terminal (`provenance verify`, `provenance timeline`
 * without --json).
 */
import type { Timeline } from '../timeline/index.js'
import { REASON_DESCRIPTIONS, type Verdict } from '../verify/index.js'

function iso (ms: number | null): string {
  return ms === null ? '-' : new Date(ms).toISOString()
}

/** The verdict as text for a terminal. */
export function formatVerdict (v: Verdict): string {
  const c = v.counts
  const lines = [
    `${v.verdict.toUpperCase()}${v.completeness.status === 'incomplete' ? ' (INCOMPLETE)' : ''}  device ${v.device}  ${v.mode === 'online' ? `online, chain ${v.chain.chainId} at block ${String(v.chain.checkedAtBlock)}` : `offline, bundle facts at block ${v.chain.readAtBlock}`}`,
    `records   ${c.judged} judged of ${c.records}${v.window.fromMs !== null || v.window.toMs !== null ? ` (window ${iso(v.window.fromMs)} .. ${iso(v.window.toMs)})` : ''}, seq ${String(v.firstSeq)}..${String(v.lastSeq)}${v.fromGenesis ? ' from genesis' : v.prunedFromGenesis ? ' from genesis (earlier seqs pruned by policy)' : ''}`,
    `signature ${c.signaturesValid}/${c.signaturesChecked} valid (${v.verifier === 'noble' ? '@noble/ed25519' : 'node:crypto'})`,
    `chain     ${c.chainLinked} linked, ${v.gaps.length} honest gap(s)${v.gaps.map(g => ` [${g.firstSeq}..${g.lastSeq} ${g.reason}]`).join('')}`,
    `proofs    ${c.proofsValid}/${c.proofsChecked} valid in ${c.anchors} anchored batch(es); ${c.models} model(s)`,
    `complete  ${v.completeness.status}${v.completeness.missing === undefined ? '' : ` (missing seq ${v.completeness.missing.fromSeq}..${v.completeness.missing.toSeq})`}: ${v.completeness.message}`,
    // Removal by policy, not loss (PROTOCOL.md §12): named with the statement that did it.
    ...v.pruned.map(p => `PRUNED    seq ${p.firstSeq}..${p.lastSeq} by statement ${p.statement} (gateway ${p.gatewayId}, ${p.reason}, retention ${p.retentionDays} days, ${iso(p.prunedAtMs)}${p.committed ? ', anchored' : ', not yet anchored'})`),
    ...v.shredded.map(x => `SHREDDED  seq ${x.firstSeq}..${x.lastSeq} (${x.records} record(s) here) by statement ${x.statement}: subject ${x.subjectRef.slice(0, 16)}…, ${x.reason}, ${iso(x.shreddedAtMs)}; commitments unopenable, signatures and proofs checked`),
    `findings  ${c.failures} failure(s) on ${c.recordsFailed} record(s), ${c.warnings} warning(s)${c.notJudged > 0 ? `, ${c.notJudged} outside the window` : ''}`
  ]
  const list = (title: string, findings: Verdict['failures']): void => {
    if (findings.length === 0) return
    lines.push('', `${title}:`)
    for (const f of findings) {
      const seq = f.seq === undefined ? 'bundle' : f.lastSeq !== undefined && f.lastSeq !== f.seq ? `seq ${f.seq}..${f.lastSeq}` : `seq ${f.seq}`
      lines.push(`  ${seq.padEnd(12)} ${f.reason.padEnd(20)} ${f.message}`)
    }
  }
  list('failures', v.failures)
  list('warnings', v.warnings)
  if (v.truncated) lines.push('  (more findings: see --json and --max-findings)')
  if (v.failures.length > 0) {
    lines.push('', 'reasons:')
    for (const reason of Object.keys(v.reasons) as Array<keyof typeof REASON_DESCRIPTIONS>) lines.push(`  ${reason.padEnd(20)} ${String(v.reasons[reason]).padStart(6)}  ${REASON_DESCRIPTIONS[reason]}`)
  }
  return lines.join('\n') + '\n'
}

/** The timeline as text for a terminal. */
export function formatTimeline (t: Timeline): string {
  const lines = [`device ${t.device}: ${t.records} records, ${t.inferences} inferences${t.malformed > 0 ? `, ${t.malformed} malformed` : ''}`]
  const events: Array<[number, number, string]> = [
    ...t.boots.map(e => [e.timeMs, e.seq, `boot ${e.boot} (agent ${e.agentVersion}, ${e.profile})`] as [number, number, string]),
    ...t.reboots.filter(e => !e.clean).map(e => [e.timeMs, e.seq, `unclean reboot ${e.fromBoot} -> ${e.toBoot} (no shutdown record)`] as [number, number, string]),
    ...t.modelLoads.map(e => [e.timeMs, e.seq, `model load ${e.name === null ? 'UNREGISTERED' : `${e.name} ${String(e.version)}`} ${e.modelHash.slice(0, 12)} (${e.file}, ${e.status}, policy ${e.policy})`] as [number, number, string]),
    ...t.policies.map(e => [e.timeMs, e.seq, `policy v${e.version} ${e.mode} in force (fleet ${e.fleetId}, sha256 ${e.policyHash.slice(0, 12)})`] as [number, number, string]),
    ...t.dataCaptures.map(e => [e.timeMs, e.seq, `data capture for ${e.dataset}${e.label === null ? '' : ` (${e.label})`}, ${e.sizeBytes} bytes, commitment ${e.commitment.slice(0, 12)}`] as [number, number, string]),
    ...t.gaps.map(e => [e.timeMs, e.seq, `gap ${e.firstSeq}..${e.lastSeq} dropped: ${e.reason}`] as [number, number, string]),
    ...t.keyRotations.map(e => [e.timeMs, e.seq, `key rotation to ${e.keyFingerprint}, valid from ${iso(e.validFromMs)}`] as [number, number, string]),
    ...t.shutdowns.map(e => [e.timeMs, e.seq, `shutdown: ${e.reason}`] as [number, number, string]),
    ...t.oversight.map(e => [e.timeMs, e.seq, `oversight by ${e.reviewer}: ${e.verdict} decision ${e.decisionDeviceId} seq ${e.decisionSeq} (${e.decisionHash.slice(0, 12)}): ${e.reason}`] as [number, number, string]),
    ...t.sessions.map(e => [e.timeMs, e.seq, `use ${e.phase} ${e.sessionId}, reference ${e.referenceHash === null ? 'none' : `${e.referenceName} ${e.referenceHash.slice(0, 12)}`}`] as [number, number, string])
  ].sort((a, b) => a[1] - b[1])
  lines.push('', 'events:')
  for (const [timeMs, seq, text] of events) lines.push(`  ${iso(timeMs)}  seq ${String(seq).padEnd(8)} ${text}`)
  if (t.missing.length > 0) lines.push('', `missing, undeclared: ${t.missing.map(m => `${m.firstSeq}..${m.lastSeq}`).join(', ')}`)
  lines.push('', 'models:')
  for (const m of t.models) lines.push(`  ${m.modelHash.slice(0, 12)}  ${(m.name === null ? 'UNREGISTERED' : `${m.name} ${String(m.version)}`).padEnd(24)} ${m.status.padEnd(10)} ${m.inferences} inferences`)
  lines.push('', `inferences per ${t.intervalMs} ms:`)
  for (const b of t.buckets) if (b.total > 0) lines.push(`  ${iso(b.startMs)}  ${String(b.total).padStart(7)}`)
  lines.push('', 'decisions:')
  for (const d of t.decisions) lines.push(`  ${String(d.count).padStart(7)}  ${d.decision === null ? '(none)' : JSON.stringify(d.decision)}`)
  if (t.otherDecisions.count > 0) lines.push(`  ${String(t.otherDecisions.count).padStart(7)}  (${t.otherDecisions.distinct} other values)`)
  return lines.join('\n') + '\n'
}
