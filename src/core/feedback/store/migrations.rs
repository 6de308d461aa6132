//! Versioned migrations of the app's own store. `PRAGMA user_version` holds the version;
//! each step runs in one transaction with the version bump, so a store is always at one
//! exact version (a crash mid-migration leaves the previous one).
//!
//! Several processes may open a new store at once (two `correct`s, the app and a shell):
//! each step takes the write lock first (`BEGIN IMMEDIATE`) and reads the version again
//! under it, so a step another process applied meanwhile is skipped, never run twice.
//!
//! Never edit a released step: add a new one. `tests/fixtures/history-v1.sql` is a store as
//! version 1 wrote it; the tests migrate it forward.

use rusqlite::{Connection, TransactionBehavior};

/// Version 1: runs and their attempts, scoped to a database (path + schema fingerprint).
const V1: &str = "
CREATE TABLE scopes (
    id INTEGER PRIMARY KEY,
    path TEXT NOT NULL,
    fingerprint TEXT NOT NULL,
    first_seen INTEGER NOT NULL,
    UNIQUE (path, fingerprint)
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY,
    scope_id INTEGER NOT NULL REFERENCES scopes(id),
    question TEXT NOT NULL,
    asked_at INTEGER NOT NULL,
    final_sql TEXT,
    row_count INTEGER,
    answer TEXT,
    error TEXT,
    tables_sent TEXT NOT NULL,
    tables_used TEXT NOT NULL,
    context_mode TEXT NOT NULL,
    timings TEXT NOT NULL,
    total_ms INTEGER NOT NULL,
    model TEXT NOT NULL,
    outcome TEXT NOT NULL
);
CREATE INDEX runs_by_scope ON runs (scope_id, id);
CREATE TABLE attempts (
    run_id INTEGER NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    n INTEGER NOT NULL,
    sql TEXT NOT NULL,
    error TEXT,
    PRIMARY KEY (run_id, n)
);
";

/// Version 2: what the model saw (schema text, examples, adapter), ratings, verified
/// question/SQL pairs, and the feedback log the retraining threshold counts.
const V2: &str = "
CREATE TABLE prompts (
    id INTEGER PRIMARY KEY,
    sha256 TEXT NOT NULL UNIQUE,
    schema_text TEXT NOT NULL
);
ALTER TABLE runs ADD COLUMN adapter TEXT;
ALTER TABLE runs ADD COLUMN prompt_id INTEGER REFERENCES prompts(id);
ALTER TABLE runs ADD COLUMN examples TEXT NOT NULL DEFAULT '[]';
CREATE TABLE ratings (
    run_id INTEGER PRIMARY KEY REFERENCES runs(id) ON DELETE CASCADE,
    rating TEXT NOT NULL CHECK (rating IN ('up', 'down')),
    note TEXT,
    rated_at INTEGER NOT NULL
);
CREATE TABLE pairs (
    id INTEGER PRIMARY KEY,
    scope_id INTEGER NOT NULL REFERENCES scopes(id),
    run_id INTEGER REFERENCES runs(id) ON DELETE SET NULL,
    question TEXT NOT NULL,
    sql TEXT NOT NULL,
    source TEXT NOT NULL CHECK (source IN ('correction', 'thumbs_up', 'synthetic')),
    prompt_id INTEGER REFERENCES prompts(id),
    derived_from INTEGER REFERENCES pairs(id) ON DELETE CASCADE,
    created_at INTEGER NOT NULL,
    updated_at INTEGER NOT NULL
);
CREATE INDEX pairs_by_scope ON pairs (scope_id, source);
CREATE TABLE feedback_log (
    id INTEGER PRIMARY KEY,
    kind TEXT NOT NULL CHECK (kind IN ('correction', 'thumbs_down')),
    run_id INTEGER,
    pair_id INTEGER,
    at INTEGER NOT NULL
);
CREATE TABLE training_marks (
    id INTEGER PRIMARY KEY,
    at INTEGER NOT NULL,
    adapter TEXT,
    last_feedback_id INTEGER NOT NULL
);
CREATE TABLE meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL);
INSERT INTO meta (key, value) VALUES ('pairs_revision', 0);
";

/// Version 3: follow-up questions. A run records the run it followed up (`parent_id`),
/// so a conversation is the chain of parents.
const V3: &str = "
ALTER TABLE runs ADD COLUMN parent_id INTEGER REFERENCES runs(id) ON DELETE SET NULL;
";

/// Every step in order; the store's version is the number of steps applied.
pub const MIGRATIONS: &[&str] = &[V1, V2, V3];

pub const LATEST_VERSION: u32 = MIGRATIONS.len() as u32;

pub fn version(conn: &Connection) -> rusqlite::Result<u32> {
    conn.query_row("PRAGMA user_version", [], |row| row.get(0))
}

/// Applies the steps after the store's version, up to `target`. Returns the version reached.
/// A store newer than this build is left alone and reported by the caller.
pub fn migrate_to(conn: &mut Connection, target: u32) -> rusqlite::Result<u32> {
    let target = target.min(LATEST_VERSION);
    let mut current = version(conn)?;
    while current < target {
        let tx = conn.transaction_with_behavior(TransactionBehavior::Immediate)?;
        // The version read before the lock may be stale: another process may have migrated.
        current = version(&tx)?;
        if current >= target {
            break;
        }
        tx.execute_batch(MIGRATIONS[current as usize])?;
        tx.pragma_update(None, "user_version", current + 1)?;
        tx.commit()?;
        current += 1;
    }
    Ok(current)
}
