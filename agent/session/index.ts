export { ProvenanceAgent, ProvenanceModel, AGENT_VERSION, silentLogger, type AgentOptions, type RunOptions, type RunResult, type Logger, type ObservedRun, type DataCaptureMeta, type DataCaptureReceipt } from './provenance-agent.js'
export { WorkerSession, loadModelInWorker, type WorkerLoadedModel, type WorkerModelOptions, type WorkerRunResult, type StartedRun } from './worker-session.js'
