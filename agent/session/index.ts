export { ProvenanceAgent, ProvenanceModel, AGENT_VERSION, type AgentOptions, type RunOptions, type RunResult, type ObservedRun, type DataCaptureMeta, type DataCaptureReceipt } from './provenance-agent.js'
export { WorkerSession, loadModelInWorker, type WorkerLoadedModel, type WorkerModelOptions, type WorkerRunResult, type StartedRun } from './worker-session.js'
/** The logger seam is common's (one for every service); re-exported for the agent's library users. */
export { SILENT_LOGGER, type Logger } from '../../common/logger.js'
