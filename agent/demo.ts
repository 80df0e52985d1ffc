/**
 * `npm run demo`: the README's main job. For now it runs the agent core end to end on the real
 * PaddleOCR models; the full fleet demo (gateway, chain, forensics) grows from here.
 */
import { runAgentCoreDemo } from './demo/agent-core-demo.js'

runAgentCoreDemo().then(ok => { process.exitCode = ok ? 0 : 1 }, e => {
  console.error(`${(e as { code?: string }).code ?? 'ERROR'}: ${(e as Error).message}`)
  process.exitCode = 1
})
