/**
 * The commands and options of `provenance-agent`, as data: the parser accepts exactly these, and
 * `--help` is written from them, so the help cannot promise an option the parser refuses.
 */

export interface OptionSpec {
  /** Long name without dashes, e.g. `config`. */
  name: string
  type: 'string' | 'boolean'
  short?: string
  /** Placeholder of the value in the help, e.g. `<path>`. */
  value?: string
  description: string
}

export interface CommandSpec {
  /** Words after `provenance-agent`, e.g. ['keys', 'rotate']. */
  path: string[]
  summary: string
  /** Paragraphs of the command's help. */
  description: string[]
  options: OptionSpec[]
}

export const CONFIG_OPTION: OptionSpec = {
  name: 'config',
  type: 'string',
  value: '<path>',
  description: 'Config file (JSON). Default: $PROVENANCE_AGENT_CONFIG; without either, the configuration comes from PROVENANCE_AGENT_* variables alone.'
}
const JSON_OUT: OptionSpec = { name: 'json', type: 'boolean', description: 'Print the result as JSON on stdout (for machines).' }
const HELP: OptionSpec = { name: 'help', short: 'h', type: 'boolean', description: 'Show this help and exit.' }

/** Options every command takes. */
export const COMMON_OPTIONS: readonly OptionSpec[] = Object.freeze([CONFIG_OPTION, JSON_OUT, HELP])
/** The commands that ask the running daemon reach it through its socket, or its TCP API with this. */
const DAEMON_PORT: OptionSpec = { name: 'port', type: 'string', value: '<port>', description: 'Use the daemon\'s TCP API on 127.0.0.1:<port> (token from <stateDir>/api-token) instead of its socket.' }

export const COMMANDS: readonly CommandSpec[] = Object.freeze([
  {
    path: ['start'],
    summary: 'Run the daemon (agent, models, policy, uplink, local HTTP API) until SIGTERM or SIGINT.',
    description: [
      'Checks the configuration, firmware profile, model files, stored policy and key file before anything else; any problem exits 78 with nothing written to the record log and nothing listening. Then it writes the boot record, loads the models (a model refused by an enforce policy is not loaded and the daemon runs on), connects the uplink when brokerUrl is set, and serves the HTTP API on the unix socket apiSocket (default <stateDir>/api.sock, mode apiSocketMode: 0600, or 0660 for the service group) and, only when statusPort is set, on 127.0.0.1:statusPort (0 = chosen by the OS; logged and written to <stateDir>/daemon.json) where every request needs the bearer token of <stateDir>/api-token (created 0600).',
      'SIGTERM or SIGINT: stop taking runs, finish the runs in flight, write the shutdown record, stop the uplink, exit 0. SIGHUP: load every model file again (a file changed on disk is logged and, under enforce, must still be approved).',
      'Logs are JSON lines (pino) on stderr; with --json a {"event":"ready",...} line and a {"event":"stopped",...} line go to stdout.'
    ],
    options: [...COMMON_OPTIONS]
  },
  {
    path: ['init'],
    summary: 'Create the device key before the first start and print the enrollment request for the fleet.',
    description: [
      'Creates the key file named by the firmware profile (keys.path, relative to stateDir) with mode 0600 in a 0700 folder: the Ed25519 signing key and the secret tensor commitments are salted with. An existing key file is reused, never replaced. Prints the enrollment request (JSON: format, deviceId, publicKey, validFromMs, profile, agentVersion, createdMs) on stdout; register it before the first start with `provenance-fleet device register`, which reads this file, so the first records are signed by a registered key. Neither the daemon nor the record log is touched.'
    ],
    options: [...COMMON_OPTIONS, { name: 'out', type: 'string', value: '<path>', description: 'Also write the enrollment request to this file (mode 0644; it holds no secret).' },
      { name: 'policy', type: 'string', value: '<file>', description: 'Pin the fleet\'s signed model policy (the file `provenance-fleet policy sign` writes): verified with policyAdminPublicKey and fleetId, stored as <stateDir>/policy.cbor, so the first start loads approved models at once instead of waiting for the retained policy.' }]
  },
  {
    path: ['status'],
    summary: 'Ask the running daemon for its status (identity, chain head, models, uplink, policy, budget).',
    description: [
      'Queries GET /status on the daemon\'s unix socket (apiSocket, default <stateDir>/api.sock), or with --port on its TCP API with the token of <stateDir>/api-token. Exits 1 with DAEMON_NOT_RUNNING when nothing answers, DAEMON_ACCESS_DENIED when this user may not use the API.'
    ],
    options: [...COMMON_OPTIONS, DAEMON_PORT]
  },
  {
    path: ['keys', 'show'],
    summary: 'Show the device\'s public key and the history of its keys (never a secret).',
    description: [
      'Reads the key file named by the firmware profile (keys.path, relative to stateDir). Does not need the daemon to be stopped. A rotation that was interrupted is shown as pending; the next start settles it.'
    ],
    options: [...COMMON_OPTIONS]
  },
  {
    path: ['keys', 'rotate'],
    summary: 'Rotate the device key: a key-rotation record signed by the old key, then the new key signs.',
    description: [
      'Writes a key-rotation record { newPublicKey, validFromMs } signed by the current key and switches to a fresh key for every later record; the key file keeps every public key with the time it became valid, and drops the old secret. Needs the record log, so stop the daemon first (systemctl stop provenance-agent); a running daemon makes it fail with LOG_LOCKED. Register the new public key with the fleet\'s device registry afterwards.'
    ],
    options: [...COMMON_OPTIONS]
  },
  {
    path: ['verify-log'],
    summary: 'Verify the local record log: signatures (with the key history), seq, boot counter, hash links, gaps.',
    description: [
      'Reads the log directly, or through the running daemon\'s HTTP API when the daemon holds it. Records the gateway acknowledged may have been deleted: the check then starts at the oldest stored record. Prints a verdict; exits 1 with CHAIN_BROKEN naming the seq and the reason of the first broken link.'
    ],
    options: [...COMMON_OPTIONS]
  },
  {
    path: ['export'],
    summary: 'Write the records of a seq range to a file, for forensics.',
    description: [
      'Formats: cbor (default) is one canonical CBOR array of the signed record envelopes, as they travel to the gateway; jsonl is one JSON object per record { seq, boot, timeMs, kind, hash, envelope } with hex bytes. The file is written atomically with mode 0600. Works with the daemon running (through its HTTP API) or stopped.'
    ],
    options: [
      ...COMMON_OPTIONS,
      { name: 'from', type: 'string', value: '<seq>', description: 'First seq to export. Default 0 (the oldest stored record).' },
      { name: 'to', type: 'string', value: '<seq>', description: 'Last seq to export. Default: the newest record.' },
      { name: 'format', type: 'string', value: '<cbor|jsonl>', description: 'Output format. Default cbor.' },
      { name: 'out', type: 'string', value: '<path>', description: 'Output file, or - for stdout (then --json is refused). Required.' }
    ]
  },
  {
    path: ['capture', 'freeze'],
    summary: 'Freeze the incident capture: the raw inputs and outputs of the recent runs, for replay.',
    description: [
      'Asks the running daemon (POST /v1/captures) to write its capture ring to <stateDir>/captures/ and, with --out, copies the capture file there. The file holds raw inputs and the salts of their records: it is incident material; hand it only to the investigator, who checks it with "provenance replay".'
    ],
    options: [
      ...COMMON_OPTIONS,
      DAEMON_PORT,
      { name: 'reason', type: 'string', value: '<text>', description: 'Why the capture is taken (kept in the capture file). Default "request".' },
      { name: 'out', type: 'string', value: '<path>', description: 'Also write the capture file here (mode 0600).' }
    ]
  },
  {
    path: ['capture', 'list'],
    summary: 'List the frozen incident captures waiting on the device.',
    description: ['Asks the running daemon (GET /v1/captures).'],
    options: [...COMMON_OPTIONS, DAEMON_PORT]
  },
  {
    path: ['capture', 'sample'],
    summary: 'Keep a sample for training: a signed data-capture record that commits to the file, with its dataset and label.',
    description: [
      'Asks the running daemon (POST /v1/data-captures) to append a data-capture record (docs/LINEAGE.md §5): a salted commitment to the SHA-256 of the file, its size, the dataset it is kept for, its label or purpose and the capture time, signed and uplinked like every record. The file itself stays here. Prints the receipt: the record (seq, hash, envelope), the salt and content hash that open the commitment, and `capture`, the entry of a captures file for this file (name, envelope, salt). Keep the receipt with the sample: without the salt nobody can show the record is about this file. Once the record is anchored, `provenance dataset capture-proofs` adds its inclusion proof.'
    ],
    options: [
      ...COMMON_OPTIONS,
      DAEMON_PORT,
      { name: 'file', type: 'string', value: '<path>', description: 'The sample to keep (read here and sent to the daemon, at most 256 MiB; the daemon refuses bodies over its maxRequestBytes). Required.' },
      { name: 'dataset', type: 'string', value: '<name>', description: 'The dataset the sample is kept for (1..256 bytes). Required.' },
      { name: 'label', type: 'string', value: '<text>', description: 'Its label or purpose (at most 256 bytes), e.g. truck or fl-update. Default: none.' },
      { name: 'name', type: 'string', value: '<name>', description: 'The file\'s name in the dataset, for the captures entry. Default: the file\'s base name.' },
      { name: 'captured-at', type: 'string', value: '<ms>', description: 'When the sample was taken, Unix milliseconds. Default: now.' }
    ]
  },
  {
    path: ['oversight'],
    summary: 'Record a person\'s review of a decision (EU AI Act Art. 14): confirmed, overridden or escalated.',
    description: [
      'Run on a reviewing station: an agent whose device id and key are registered in the registry like a device\'s (provenance-agent init, then provenance-fleet device register). Asks the running daemon (POST /v1/records) to append an oversight record naming the decision by device, seq and record hash (the hash the decision\'s API answer or `provenance timeline` shows), signed by the station\'s key and sent through the uplink like every record. `provenance compliance` rejects a review whose decision does not exist with that hash, or whose station is not a reviewer (docs/COMPLIANCE.md).'
    ],
    options: [
      ...COMMON_OPTIONS,
      DAEMON_PORT,
      { name: 'decision', type: 'string', value: '<hash>', description: 'Record hash of the decision reviewed (64 hex digits). Required.' },
      { name: 'decision-device', type: 'string', value: '<id>', description: 'Device id of the decision. Required.' },
      { name: 'decision-seq', type: 'string', value: '<seq>', description: 'Seq of the decision record. Required.' },
      { name: 'verdict', type: 'string', value: '<confirmed|overridden|escalated>', description: 'What the reviewer concluded. Required.' },
      { name: 'reviewer', type: 'string', value: '<id>', description: 'The person, as the deployer registers its reviewers (an id, not a name). Required.' },
      { name: 'reason', type: 'string', value: '<text>', description: 'Why (at most 256 bytes). Default empty.' }
    ]
  },
  {
    path: ['session', 'start'],
    summary: 'Record the start of a use (EU AI Act Art. 12(3)) and the reference database it checks against.',
    description: [
      'Asks the running daemon (POST /v1/records) to append a session record: the inference records after it, up to the end of the same session id, belong to this use. --reference hashes the reference database file here (SHA-256 of its bytes); the file itself never leaves the device.'
    ],
    options: [
      ...COMMON_OPTIONS,
      DAEMON_PORT,
      { name: 'id', type: 'string', value: '<session-id>', description: 'Id of the use (at most 256 bytes). Required.' },
      { name: 'reference', type: 'string', value: '<file>', description: 'The reference database consulted: its SHA-256 is recorded. Default: none.' },
      { name: 'reference-name', type: 'string', value: '<label>', description: 'A label of the reference database (version, name). Default: the file name.' }
    ]
  },
  {
    path: ['session', 'end'],
    summary: 'Record the end of a use started with `session start`.',
    description: ['As `session start`, with the same --id (and the same --reference, so each record names the database on its own).'],
    options: [
      ...COMMON_OPTIONS,
      DAEMON_PORT,
      { name: 'id', type: 'string', value: '<session-id>', description: 'Id of the use. Required.' },
      { name: 'reference', type: 'string', value: '<file>', description: 'The reference database consulted. Default: none.' },
      { name: 'reference-name', type: 'string', value: '<label>', description: 'A label of the reference database. Default: the file name.' }
    ]
  },
  {
    path: ['shred'],
    summary: 'Crypto-shred a data subject: destroy the key that salts its records, so their commitments can never be opened.',
    description: [
      'Asks the running daemon (POST /v1/subjects/shred) to destroy the subject key of the runs made with that subject (run requests with "subject"), drop those runs from the capture ring, and sign a shredding statement (docs/PROTOCOL.md §12.2) with the device key, written to <stateDir>/shreddings/<hash>.shredding. Records, signatures, chain and proofs stay valid; verification shows the records as SHREDDED. Frozen captures already taken must be deleted by whoever holds them. Fails with SUBJECT_UNKNOWN when no run was made for the subject, SUBJECT_SHREDDED when it was shredded already.'
    ],
    options: [
      ...COMMON_OPTIONS,
      DAEMON_PORT,
      { name: 'subject', type: 'string', value: '<id>', description: 'The data subject, as the runs named it. Required.' },
      { name: 'reason', type: 'string', value: '<text>', description: 'Why (kept in the signed statement), e.g. the erasure request\'s reference. Default "erasure request".' },
      { name: 'out', type: 'string', value: '<path>', description: 'Also write the statement here.' }
    ]
  }
])

/** Options of the bare `provenance-agent` (no command). */
export const TOP_OPTIONS: readonly OptionSpec[] = Object.freeze([
  HELP,
  { name: 'version', type: 'boolean', description: 'Print the agent version and exit.' }
])

/** Command groups that only hold subcommands (`keys`). */
export const GROUPS: readonly string[] = Object.freeze([...new Set(COMMANDS.filter(c => c.path.length > 1).map(c => c.path[0] as string))])

/** The command named by `path`, if any. */
export function findCommand (path: readonly string[]): CommandSpec | undefined {
  return COMMANDS.find(c => c.path.length === path.length && c.path.every((p, i) => p === path[i]))
}
