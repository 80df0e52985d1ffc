export { ProvenanceAgent, ProvenanceModel, AGENT_VERSION, silentLogger, type AgentOptions, type RunOptions, type RunResult, type Logger } from './provenance-agent.js'
