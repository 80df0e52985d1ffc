/**
 * The agent's version, in a module of its own: `provenance-agent --version` reads it without
 * loading onnxruntime (a second of start-up on a Pi).
 */
export const AGENT_VERSION = '0.1.0'
