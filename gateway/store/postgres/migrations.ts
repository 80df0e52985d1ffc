/**
 * The PostgreSQL schema of the gateway tier, as versioned migrations applied in order at open.
 * Each runs once, in its own transaction, recorded in gw_migrations; concurrent starts serialise
 * on an advisory lock, so several processes opening one database at once migrate it once.
 */
import type pg from 'pg'

export interface Migration {
  version: number
  name: string
  sql: string
}

/** Never edit a released migration: append a new one. */
export const MIGRATIONS: readonly Migration[] = [
  {
    version: 1,
    name: 'gateway store, anchoring state, sequencer lease',
    sql: `
      -- Records shared by every ingest process: (device, seq) is unique, so a duplicate dies here.
      -- batch_id/leaf_index stay NULL until the sequencer puts the record in a batch.
      CREATE TABLE gw_records (
        device_id text NOT NULL,
        seq bigint NOT NULL,
        batch_id bigint,
        leaf_index integer,
        envelope bytea NOT NULL,
        ingest_id bigserial NOT NULL,
        ingested_at timestamptz NOT NULL DEFAULT now(),
        PRIMARY KEY (device_id, seq)
      );
      CREATE INDEX gw_records_unbatched ON gw_records (ingest_id) WHERE batch_id IS NULL;
      -- Per ingest process (node): its view of each device (tip, counters) and waiting records.
      CREATE TABLE gw_devices (
        node text NOT NULL,
        device_id text NOT NULL,
        tip_seq bigint,
        tip_hash bytea,
        tip_boot bigint,
        last_seen_ms bigint NOT NULL,
        stored bigint NOT NULL,
        quarantined bigint NOT NULL,
        anchored_seq bigint NOT NULL,
        PRIMARY KEY (node, device_id)
      );
      CREATE TABLE gw_pending (
        node text NOT NULL,
        device_id text NOT NULL,
        seq bigint NOT NULL,
        envelope bytea NOT NULL,
        PRIMARY KEY (node, device_id, seq)
      );
      -- A record is a leaf of at most one batch: UNIQUE (device_id, seq).
      CREATE TABLE gw_leaves (
        batch_id bigint NOT NULL,
        leaf_index integer NOT NULL,
        device_id text NOT NULL,
        seq bigint NOT NULL,
        leaf_hash bytea NOT NULL,
        time_ms bigint NOT NULL,
        after_seq bigint NOT NULL,
        PRIMARY KEY (batch_id, leaf_index),
        UNIQUE (device_id, seq)
      );
      CREATE TABLE gw_batches (
        id bigint PRIMARY KEY,
        size integer NOT NULL,
        root bytea NOT NULL,
        first_record_time_ms bigint NOT NULL,
        last_record_time_ms bigint NOT NULL,
        checkpoint text NOT NULL,
        metadata_hash bytea NOT NULL,
        sealed_at_ms bigint NOT NULL
      );
      CREATE TABLE gw_quarantine (
        key text PRIMARY KEY,
        time_ms bigint NOT NULL,
        reason text NOT NULL,
        topic text NOT NULL,
        device_id text,
        seq bigint,
        detail text NOT NULL,
        raw bytea NOT NULL,
        raw_bytes integer NOT NULL
      );
      -- Small integers: node '' for shared ones (the open batch), the node's name for its own.
      CREATE TABLE gw_meta (node text NOT NULL, key text NOT NULL, value bigint NOT NULL, PRIMARY KEY (node, key));
      -- Anything else the generic op interface writes (tests, future keys).
      CREATE TABLE gw_kv (key text PRIMARY KEY, value bytea NOT NULL);
      -- The anchorer's state (anchor/state-store.ts), one JSON document per batch.
      CREATE TABLE gw_anchor_batches (id bigint PRIMARY KEY, root text NOT NULL UNIQUE, state text NOT NULL, body jsonb NOT NULL);
      CREATE TABLE gw_anchor_meta (key text PRIMARY KEY, value jsonb NOT NULL);
      -- The sequencer lease: one row per role; token grows on every change of holder (fencing).
      CREATE TABLE gw_lease (name text PRIMARY KEY, holder text NOT NULL, token bigint NOT NULL, expires_at timestamptz NOT NULL);
    `
  },
  {
    version: 2,
    name: 'device tip tree history, pruning statements, record hashes for the sequencer',
    sql: `
      -- The tip tree (PROTOCOL.md §7.10): a row per device per batch in which its tip moved,
      -- written by the sequencer in the batch's sealing transaction. The tree of batch B is each
      -- device's newest row with batch_id <= B; a device's anchored seq is its tip in the newest
      -- confirmed batch.
      CREATE TABLE gw_tip_history (
        device_id text NOT NULL,
        batch_id bigint NOT NULL,
        seq bigint NOT NULL,
        hash bytea NOT NULL,
        PRIMARY KEY (device_id, batch_id)
      );
      CREATE INDEX gw_tip_history_batch ON gw_tip_history (batch_id);
      -- Pruning statements (PROTOCOL.md §12.1); committed_in_batch 0 until a sealed batch's
      -- checkpoint carries the statement's hash.
      CREATE TABLE gw_prunings (
        device_id text NOT NULL,
        last_seq bigint NOT NULL,
        envelope bytea NOT NULL,
        committed_in_batch bigint NOT NULL,
        PRIMARY KEY (device_id, last_seq)
      );
      CREATE INDEX gw_prunings_waiting ON gw_prunings (device_id, last_seq) WHERE committed_in_batch = 0;
      -- What the ingest process computed of each record (leaf hash, record hash, device time), so
      -- the sequencer seals without reading, decoding and hashing envelopes. NULL in older rows.
      ALTER TABLE gw_records ADD COLUMN leaf_hash bytea, ADD COLUMN record_hash bytea, ADD COLUMN time_ms bigint;
    `
  }
]

/** Key of the advisory lock migrations hold (any constant unique to this schema). */
const MIGRATION_LOCK = 7_140_001

/**
 * Applies the migrations not yet applied. Idempotent; safe from several processes at once.
 * Returns the versions it applied now.
 */
export async function migrate (client: pg.ClientBase, migrations: readonly Migration[] = MIGRATIONS): Promise<number[]> {
  const applied: number[] = []
  await client.query('BEGIN')
  try {
    await client.query('SELECT pg_advisory_xact_lock($1)', [MIGRATION_LOCK])
    await client.query('CREATE TABLE IF NOT EXISTS gw_migrations (version integer PRIMARY KEY, name text NOT NULL, applied_at timestamptz NOT NULL DEFAULT now())')
    const done = new Set((await client.query<{ version: number }>('SELECT version FROM gw_migrations')).rows.map(r => r.version))
    const newest = Math.max(0, ...done)
    const known = Math.max(0, ...migrations.map(m => m.version))
    if (newest > known) throw new Error(`database schema version ${newest} is newer than this gateway knows (${known})`)
    for (const m of [...migrations].sort((a, b) => a.version - b.version)) {
      if (done.has(m.version)) continue
      await client.query(m.sql)
      await client.query('INSERT INTO gw_migrations (version, name) VALUES ($1, $2)', [m.version, m.name])
      applied.push(m.version)
    }
    await client.query('COMMIT')
  } catch (e) {
    await client.query('ROLLBACK').catch(() => {})
    throw e
  }
  return applied
}
