//! The app's own SQLite store (never the user's database): every run, its attempts and
//! what the model saw, ratings, and the verified question/SQL pairs that example memory
//! and the retraining set are built from.
//!
//! Invariants:
//! - WAL journal, one transaction per write: a process killed mid-write loses at most that
//!   write, and the file stays consistent (`tests/feedback.rs` kills a writer to show it).
//! - Every write transaction takes the write lock when it begins (`BEGIN IMMEDIATE`) and
//!   waits up to [`BUSY_TIMEOUT`] for it: a deferred one that read first would fail with
//!   "database is locked" when another process wrote meanwhile, losing the user's rating.
//! - Runs and pairs belong to a [`DbScope`] (canonical path + schema fingerprint).
//! - A pair is only stored as verified when a person said so: a correction whose SQL ran
//!   read-only through the guard ([`verify_sql`]), a thumbs-up on a run that answered, or a
//!   synthetic paraphrase whose SQL returned the same rows as a verified one. Rows coming
//!   back are never proof by themselves.

mod migrations;

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use rusqlite::{
    Connection, ErrorCode, OpenFlags, OptionalExtension, Transaction, TransactionBehavior, params,
};
use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::core::db::exec::{ExecLimits, QueryResult, ReadOnlyDb};
use crate::core::db::render::{RenderOptions, render_schema};
use crate::core::feedback::history::{
    DbScope, HistoryEntry, HistoryError, HistoryStatus, Rating, RetrainingStatus, RunHistory, RunId,
};
use crate::core::pipeline::follow_up::EarlierTurn;
use crate::core::pipeline::outcome::RunOutcome;
use crate::core::retrieval::provider::Example;

pub use migrations::{LATEST_VERSION, MIGRATIONS, migrate_to, version as schema_version};

pub(crate) type PairId = i64;

/// Result rows kept with a run in the store (the count is kept whole).
const STORED_ROWS: usize = 200;

/// How long a write waits for another process's write to finish. Writes take milliseconds;
/// this only runs out when a process holds the lock and hangs.
pub const BUSY_TIMEOUT: Duration = Duration::from_secs(30);

#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    #[error("no run with id {0}")]
    UnknownRun(RunId),
    #[error("no verified pair with id {0}")]
    UnknownPair(PairId),
    #[error("the correction was refused: {0}")]
    CorrectionRefused(String),
    #[error("cannot open the history store '{path}': {reason}")]
    Open { path: String, reason: String },
    #[error(
        "the history store '{path}' was written by a newer nano-analyst (version {found}, this one knows {known}); upgrade, or pass another --data-dir"
    )]
    TooNew {
        path: String,
        found: u32,
        known: u32,
    },
    #[error("history store error: {0}")]
    Sqlite(#[from] rusqlite::Error),
    #[error("history store error: {0}")]
    Encode(#[from] serde_json::Error),
}

impl From<StoreError> for HistoryError {
    fn from(error: StoreError) -> Self {
        match error {
            StoreError::UnknownRun(id) => HistoryError::UnknownRun(id),
            StoreError::CorrectionRefused(reason) => HistoryError::CorrectionRefused(reason),
            other => HistoryError::Storage(other.to_string()),
        }
    }
}

/// Where a verified pair came from; the retraining set carries it as provenance.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum PairSource {
    /// A person wrote or fixed the SQL.
    Correction,
    /// A person approved the model's own SQL.
    ThumbsUp,
    /// A model paraphrase whose SQL returned the same rows as a verified pair.
    Synthetic,
}

impl PairSource {
    fn parse(text: &str) -> Self {
        match text {
            "correction" => PairSource::Correction,
            "thumbs_up" => PairSource::ThumbsUp,
            _ => PairSource::Synthetic,
        }
    }

    /// Provenance as the retraining set names it.
    pub fn provenance(self) -> &'static str {
        match self {
            PairSource::Correction => "human_correction",
            PairSource::ThumbsUp => "thumbs_up",
            PairSource::Synthetic => "synthetic",
        }
    }
}

/// A question with SQL known to answer it, for one database.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct VerifiedPair {
    pub id: PairId,
    pub scope: DbScope,
    pub run_id: Option<RunId>,
    pub question: String,
    pub sql: String,
    pub source: PairSource,
    /// The schema text the model saw (or would see) for this question, when known.
    pub schema_text: Option<String>,
    /// For synthetic pairs: the verified pair they paraphrase.
    pub derived_from: Option<PairId>,
    pub created_at: i64,
    pub updated_at: i64,
}

/// The store: one connection, one writer at a time (SQLite's lock + a busy timeout, so the
/// TUI and a `correct` from another terminal can share it).
pub struct HistoryStore {
    conn: Connection,
    path: PathBuf,
}

impl HistoryStore {
    /// Opens (creating when missing) and migrates the store to the latest version.
    pub fn open(path: &Path) -> Result<Self, StoreError> {
        Self::open_at_version(path, LATEST_VERSION)
    }

    /// Opens and migrates only up to `version` (tests build older stores this way).
    pub fn open_at_version(path: &Path, version: u32) -> Result<Self, StoreError> {
        let shown = path.display().to_string();
        let open_error = |reason: String| StoreError::Open {
            path: shown.clone(),
            reason,
        };
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            std::fs::create_dir_all(parent).map_err(|e| open_error(e.to_string()))?;
        }
        let flags = OpenFlags::SQLITE_OPEN_READ_WRITE
            | OpenFlags::SQLITE_OPEN_CREATE
            | OpenFlags::SQLITE_OPEN_NO_MUTEX;
        let mut conn =
            Connection::open_with_flags(path, flags).map_err(|e| open_error(e.to_string()))?;
        conn.busy_timeout(BUSY_TIMEOUT)?;
        switch_to_wal(&conn).map_err(|e| open_error(e.to_string()))?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.pragma_update(None, "foreign_keys", "ON")?;
        let found = migrations::version(&conn)?;
        if found > LATEST_VERSION {
            return Err(StoreError::TooNew {
                path: shown,
                found,
                known: LATEST_VERSION,
            });
        }
        migrate_to(&mut conn, version)?;
        Ok(Self {
            conn,
            path: path.to_path_buf(),
        })
    }

    pub fn path(&self) -> &Path {
        &self.path
    }

    pub fn version(&self) -> Result<u32, StoreError> {
        Ok(migrations::version(&self.conn)?)
    }

    pub fn connection(&self) -> &Connection {
        &self.conn
    }

    /// A write transaction holding the write lock from its start (see the module doc).
    fn write(&mut self) -> Result<Transaction<'_>, StoreError> {
        Ok(self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?)
    }

    fn existing_scope_id(&self, scope: &DbScope) -> Result<Option<i64>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT id FROM scopes WHERE path = ?1 AND fingerprint = ?2",
                params![scope.path, scope.fingerprint],
                |row| row.get(0),
            )
            .optional()?)
    }

    /// Records one run with what its prompt held (`outcome.prompt`). One transaction: all
    /// of it or nothing.
    pub fn record(&mut self, scope: &DbScope, outcome: &RunOutcome) -> Result<RunId, StoreError> {
        self.record_in_thread(scope, outcome, None)
    }

    /// As [`record`](Self::record), for a follow-up of run `parent`.
    pub fn record_in_thread(
        &mut self,
        scope: &DbScope,
        outcome: &RunOutcome,
        parent: Option<RunId>,
    ) -> Result<RunId, StoreError> {
        let prompt = outcome.prompt.as_ref();
        let tx = self.write()?;
        let store = StoreTx(&tx);
        let scope_id = store.scope_id(scope)?;
        let prompt_id = match prompt {
            Some(p) => Some(store.prompt_id(&p.schema_text)?),
            None => None,
        };
        let examples: Vec<StoredExample> = prompt
            .map(|p| p.examples.iter().map(StoredExample::from).collect())
            .unwrap_or_default();
        let mut kept = outcome.clone();
        if let Some(result) = kept.result.as_mut() {
            result.rows.truncate(STORED_ROWS);
        }
        tx.execute(
            "INSERT INTO runs (scope_id, question, asked_at, final_sql, row_count, answer, error,
                tables_sent, tables_used, context_mode, timings, total_ms, model, outcome,
                adapter, prompt_id, examples, parent_id)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11, ?12, ?13, ?14, ?15, ?16, ?17,
                     ?18)",
            params![
                scope_id,
                outcome.question,
                now_secs(),
                outcome.sql,
                outcome
                    .result
                    .as_ref()
                    .and_then(|r| r.total_rows)
                    .map(|n| i64::try_from(n).unwrap_or(i64::MAX)),
                outcome.answer,
                outcome.error,
                serde_json::to_string(&outcome.tables_sent)?,
                serde_json::to_string(&outcome.tables_used)?,
                serde_json::to_string(&outcome.context_mode)?,
                serde_json::to_string(&outcome.timings)?,
                i64::try_from(outcome.timings.total_ms).unwrap_or(i64::MAX),
                outcome.model,
                serde_json::to_string(&kept)?,
                Option::<String>::None,
                prompt_id,
                serde_json::to_string(&examples)?,
                parent,
            ],
        )?;
        let run_id = tx.last_insert_rowid();
        for (n, attempt) in outcome.attempts.iter().enumerate() {
            tx.execute(
                "INSERT INTO attempts (run_id, n, sql, error) VALUES (?1, ?2, ?3, ?4)",
                params![run_id, n as i64 + 1, attempt.sql, attempt.error],
            )?;
        }
        tx.commit()?;
        Ok(run_id)
    }

    /// The database a run was asked on.
    pub(crate) fn run_scope(&self, run: RunId) -> Result<DbScope, StoreError> {
        self.conn
            .query_row(
                "SELECT s.path, s.fingerprint FROM runs r JOIN scopes s ON s.id = r.scope_id
                 WHERE r.id = ?1",
                params![run],
                |row| {
                    Ok(DbScope {
                        path: row.get(0)?,
                        fingerprint: row.get(1)?,
                    })
                },
            )
            .optional()?
            .ok_or(StoreError::UnknownRun(run))
    }

    /// The examples that were in a run's prompt.
    pub fn run_examples(&self, run: RunId) -> Result<Vec<Example>, StoreError> {
        let text: String = self
            .conn
            .query_row(
                "SELECT examples FROM runs WHERE id = ?1",
                params![run],
                |row| row.get(0),
            )
            .optional()?
            .ok_or(StoreError::UnknownRun(run))?;
        let stored: Vec<StoredExample> = serde_json::from_str(&text)?;
        Ok(stored.into_iter().map(Example::from).collect())
    }

    /// Rates a run. A thumbs-up on a run that answered stores its SQL as a verified pair; a
    /// thumbs-down withdraws that pair and counts towards retraining.
    pub fn rate_run(
        &mut self,
        run: RunId,
        rating: Rating,
        note: Option<&str>,
    ) -> Result<(), StoreError> {
        let tx = self.write()?;
        let row: Option<RatedRun> = tx
            .query_row(
                "SELECT scope_id, question, final_sql, error, prompt_id FROM runs WHERE id = ?1",
                params![run],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?)),
            )
            .optional()?;
        let Some((scope_id, question, sql, error, prompt_id)) = row else {
            return Err(StoreError::UnknownRun(run));
        };
        let now = now_secs();
        let label = match rating {
            Rating::Up => "up",
            Rating::Down => "down",
        };
        tx.execute(
            "INSERT INTO ratings (run_id, rating, note, rated_at) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT (run_id) DO UPDATE SET rating = ?2, note = ?3, rated_at = ?4",
            params![run, label, note, now],
        )?;
        let removed = tx.execute(
            "DELETE FROM pairs WHERE run_id = ?1 AND source = 'thumbs_up'",
            params![run],
        )?;
        let mut changed = removed > 0;
        match rating {
            Rating::Up => {
                if let (Some(sql), None) = (sql, error) {
                    tx.execute(
                        "INSERT INTO pairs (scope_id, run_id, question, sql, source, prompt_id,
                            created_at, updated_at)
                         VALUES (?1, ?2, ?3, ?4, 'thumbs_up', ?5, ?6, ?6)",
                        params![scope_id, run, question, sql, prompt_id, now],
                    )?;
                    changed = true;
                }
            }
            Rating::Down => {
                tx.execute(
                    "INSERT INTO feedback_log (kind, run_id, at) VALUES ('thumbs_down', ?1, ?2)",
                    params![run, now],
                )?;
            }
        }
        if changed {
            bump_revision(&tx)?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Stores `sql` as the answer to run `run`'s question, replacing an earlier correction
    /// of that run. The SQL must already have passed [`verify_sql`] on the run's database.
    pub(crate) fn correct_run(&mut self, run: RunId, sql: &str) -> Result<PairId, StoreError> {
        let tx = self.write()?;
        let row: Option<(i64, String, Option<i64>)> = tx
            .query_row(
                "SELECT scope_id, question, prompt_id FROM runs WHERE id = ?1",
                params![run],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((scope_id, question, prompt_id)) = row else {
            return Err(StoreError::UnknownRun(run));
        };
        tx.execute(
            "DELETE FROM pairs WHERE run_id = ?1 AND source = 'correction'",
            params![run],
        )?;
        let pair = insert_correction(&tx, scope_id, Some(run), &question, sql, prompt_id)?;
        tx.commit()?;
        Ok(pair)
    }

    /// Stores a correction asked outside a run (`nano-analyst correct`). `schema_text` is
    /// what the prompt would hold for it. The SQL must already have passed [`verify_sql`].
    pub fn add_correction(
        &mut self,
        scope: &DbScope,
        question: &str,
        sql: &str,
        schema_text: Option<&str>,
    ) -> Result<PairId, StoreError> {
        let tx = self.write()?;
        let store = StoreTx(&tx);
        let scope_id = store.scope_id(scope)?;
        let prompt_id = match schema_text {
            Some(text) => Some(store.prompt_id(text)?),
            None => None,
        };
        let pair = insert_correction(&tx, scope_id, None, question, sql, prompt_id)?;
        tx.commit()?;
        Ok(pair)
    }

    /// Stores a paraphrase of verified pair `parent` that was checked to return the same
    /// rows. Returns `None` when the same question is already stored for that database.
    pub fn add_synthetic(
        &mut self,
        parent: PairId,
        question: &str,
    ) -> Result<Option<PairId>, StoreError> {
        let tx = self.write()?;
        let row: Option<(i64, String, Option<i64>)> = tx
            .query_row(
                "SELECT scope_id, sql, prompt_id FROM pairs WHERE id = ?1",
                params![parent],
                |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)),
            )
            .optional()?;
        let Some((scope_id, sql, prompt_id)) = row else {
            return Err(StoreError::UnknownPair(parent));
        };
        let wanted = normalize_question(question);
        let mut existing = tx.prepare("SELECT question FROM pairs WHERE scope_id = ?1")?;
        let duplicate = existing
            .query_map(params![scope_id], |r| r.get::<_, String>(0))?
            .filter_map(Result::ok)
            .any(|q| normalize_question(&q) == wanted);
        drop(existing);
        if duplicate {
            return Ok(None);
        }
        let now = now_secs();
        tx.execute(
            "INSERT INTO pairs (scope_id, question, sql, source, prompt_id, derived_from,
                created_at, updated_at)
             VALUES (?1, ?2, ?3, 'synthetic', ?4, ?5, ?6, ?6)",
            params![scope_id, question.trim(), sql, prompt_id, parent, now],
        )?;
        let id = tx.last_insert_rowid();
        tx.commit()?;
        Ok(Some(id))
    }

    /// Verified pairs, oldest first; for one database when `scope` is given.
    pub fn pairs(&self, scope: Option<&DbScope>) -> Result<Vec<VerifiedPair>, StoreError> {
        let mut sql = String::from(PAIR_SELECT);
        if scope.is_some() {
            sql.push_str(" WHERE s.path = ?1 AND s.fingerprint = ?2");
        }
        sql.push_str(" ORDER BY p.id");
        let mut statement = self.conn.prepare(&sql)?;
        let rows = match scope {
            Some(scope) => statement
                .query_map(params![scope.path, scope.fingerprint], pair_from_row)?
                .collect::<Result<Vec<_>, _>>()?,
            None => statement
                .query_map([], pair_from_row)?
                .collect::<Result<Vec<_>, _>>()?,
        };
        Ok(rows)
    }

    pub fn pair(&self, id: PairId) -> Result<VerifiedPair, StoreError> {
        let sql = format!("{PAIR_SELECT} WHERE p.id = ?1");
        self.conn
            .query_row(&sql, params![id], pair_from_row)
            .optional()?
            .ok_or(StoreError::UnknownPair(id))
    }

    /// Forgets a verified pair (and the synthetic paraphrases derived from it).
    pub fn remove_pair(&mut self, id: PairId) -> Result<(), StoreError> {
        let tx = self.write()?;
        let removed = tx.execute("DELETE FROM pairs WHERE id = ?1", params![id])?;
        if removed == 0 {
            return Err(StoreError::UnknownPair(id));
        }
        bump_revision(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Changes a pair's question and/or SQL. New SQL must already have passed
    /// [`verify_sql`]; an edited pair counts as a person's correction from then on.
    pub(crate) fn edit_pair(
        &mut self,
        id: PairId,
        question: Option<&str>,
        sql: Option<&str>,
    ) -> Result<(), StoreError> {
        let tx = self.write()?;
        let changed = tx.execute(
            "UPDATE pairs SET question = coalesce(?2, question), sql = coalesce(?3, sql),
                source = 'correction', derived_from = NULL, updated_at = ?4
             WHERE id = ?1",
            params![id, question.map(str::trim), sql.map(clean_sql), now_secs()],
        )?;
        if changed == 0 {
            return Err(StoreError::UnknownPair(id));
        }
        bump_revision(&tx)?;
        tx.commit()?;
        Ok(())
    }

    /// Changes whenever a verified pair is added, edited or removed (example memory
    /// rebuilds its index when it moves).
    pub(crate) fn pairs_revision(&self) -> Result<i64, StoreError> {
        pairs_revision(&self.conn)
    }

    /// Corrections and thumbs-downs since the last [`mark_trained`](Self::mark_trained).
    pub fn retraining_status(&self, threshold: u64) -> Result<RetrainingStatus, StoreError> {
        let new_feedback: i64 = self.conn.query_row(
            "SELECT count(*) FROM feedback_log
             WHERE id > coalesce((SELECT max(last_feedback_id) FROM training_marks), 0)",
            [],
            |row| row.get(0),
        )?;
        let new_feedback = u64::try_from(new_feedback).unwrap_or(0);
        Ok(RetrainingStatus {
            new_feedback,
            threshold,
            due: threshold > 0 && new_feedback >= threshold,
            verified_pairs: None,
        })
    }

    /// Records that a model (adapter) was trained on everything so far: the count restarts.
    pub fn mark_trained(&mut self, adapter: Option<&str>) -> Result<(), StoreError> {
        let tx = self.write()?;
        tx.execute(
            "INSERT INTO training_marks (at, adapter, last_feedback_id)
             VALUES (?1, ?2, coalesce((SELECT max(id) FROM feedback_log), 0))",
            params![now_secs(), adapter],
        )?;
        tx.commit()?;
        Ok(())
    }

    /// Runs asked on `scope`, newest first.
    pub fn entries(&self, scope: &DbScope, limit: usize) -> Result<Vec<HistoryEntry>, StoreError> {
        let Some(scope_id) = self.existing_scope_id(scope)? else {
            return Ok(Vec::new());
        };
        let mut statement = self.conn.prepare(
            "SELECT r.id, r.question, r.final_sql, r.error, r.row_count, r.asked_at, r.total_ms,
                    g.rating, r.parent_id,
                    (SELECT p.sql FROM pairs p WHERE p.run_id = r.id AND p.source = 'correction'
                     ORDER BY p.id DESC LIMIT 1)
             FROM runs r LEFT JOIN ratings g ON g.run_id = r.id
             WHERE r.scope_id = ?1 ORDER BY r.id DESC LIMIT ?2",
        )?;
        let limit = i64::try_from(limit).unwrap_or(i64::MAX);
        let entries = statement
            .query_map(params![scope_id, limit], |row| {
                let error: Option<String> = row.get(3)?;
                let rating: Option<String> = row.get(7)?;
                let corrected: Option<String> = row.get(9)?;
                let rating = rating.map(|r| if r == "up" { Rating::Up } else { Rating::Down });
                let status = if corrected.is_some() {
                    HistoryStatus::Corrected
                } else if rating.is_some() {
                    HistoryStatus::Rated
                } else if error.is_some() {
                    HistoryStatus::Failed
                } else {
                    HistoryStatus::Ok
                };
                let own_sql: Option<String> = row.get(2)?;
                let row_count: Option<i64> = row.get(4)?;
                let total_ms: i64 = row.get(6)?;
                Ok(HistoryEntry {
                    id: row.get(0)?,
                    question: row.get(1)?,
                    sql: corrected.or(own_sql),
                    status,
                    row_count: row_count.and_then(|n| u64::try_from(n).ok()),
                    rating,
                    asked_at: row.get(5)?,
                    total_ms: u64::try_from(total_ms).unwrap_or(0),
                    follows: row.get(8)?,
                })
            })?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(entries)
    }

    pub fn outcome(&self, run: RunId) -> Result<Option<RunOutcome>, StoreError> {
        let text: Option<String> = self
            .conn
            .query_row(
                "SELECT outcome FROM runs WHERE id = ?1",
                params![run],
                |row| row.get(0),
            )
            .optional()?;
        Ok(match text {
            Some(text) => Some(serde_json::from_str(&text)?),
            None => None,
        })
    }

    /// The latest correction stored for `run`, if the user made one.
    /// The newest answered run on `scope` and the runs it followed up, at most `turns`,
    /// oldest first (a correction replaces a run's SQL): what `ask --follow-up` continues.
    pub fn last_thread(
        &self,
        scope: &DbScope,
        turns: usize,
    ) -> Result<Vec<(RunId, EarlierTurn)>, StoreError> {
        let Some(scope_id) = self.existing_scope_id(scope)? else {
            return Ok(Vec::new());
        };
        let mut next: Option<RunId> = self
            .conn
            .query_row(
                "SELECT id FROM runs WHERE scope_id = ?1 AND final_sql IS NOT NULL
                   AND error IS NULL ORDER BY id DESC LIMIT 1",
                params![scope_id],
                |row| row.get(0),
            )
            .optional()?;
        let mut thread = Vec::new();
        while let Some(id) = next
            && thread.len() < turns
        {
            let (question, sql, parent): (String, Option<String>, Option<RunId>) =
                self.conn.query_row(
                    "SELECT question, final_sql, parent_id FROM runs WHERE id = ?1",
                    params![id],
                    |row| Ok((row.get(0)?, row.get(1)?, row.get(2)?)),
                )?;
            if let Some(sql) = self.correction_of(id)?.or(sql) {
                thread.push((id, EarlierTurn { question, sql }));
            }
            next = parent;
        }
        thread.reverse();
        Ok(thread)
    }

    /// The run `run` followed up, if any.
    pub fn parent_of(&self, run: RunId) -> Result<Option<RunId>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT parent_id FROM runs WHERE id = ?1",
                params![run],
                |row| row.get(0),
            )
            .optional()?
            .flatten())
    }

    pub(crate) fn correction_of(&self, run: RunId) -> Result<Option<String>, StoreError> {
        Ok(self
            .conn
            .query_row(
                "SELECT sql FROM pairs WHERE run_id = ?1 AND source = 'correction'
                 ORDER BY id DESC LIMIT 1",
                params![run],
                |row| row.get(0),
            )
            .optional()?)
    }

    pub fn run_count(&self) -> Result<i64, StoreError> {
        Ok(self
            .conn
            .query_row("SELECT count(*) FROM runs", [], |row| row.get(0))?)
    }
}

impl RunHistory for HistoryStore {
    fn record_run(&mut self, scope: &DbScope, outcome: &RunOutcome) -> Result<RunId, HistoryError> {
        Ok(self.record(scope, outcome)?)
    }

    fn rate(&mut self, run: RunId, rating: Rating, note: Option<&str>) -> Result<(), HistoryError> {
        Ok(self.rate_run(run, rating, note)?)
    }

    /// Checks the SQL again on the run's database (read-only, through the guard) first.
    fn correct(&mut self, run: RunId, sql: &str) -> Result<(), HistoryError> {
        let scope = self.run_scope(run)?;
        let db = ReadOnlyDb::open(Path::new(&scope.path)).map_err(|e| {
            HistoryError::CorrectionRefused(format!("cannot check it on the database: {e}"))
        })?;
        verify_sql(&db, sql, ExecLimits::default())?;
        self.correct_run(run, sql)?;
        Ok(())
    }

    fn list(&self, scope: &DbScope, limit: usize) -> Result<Vec<HistoryEntry>, HistoryError> {
        Ok(self.entries(scope, limit)?)
    }

    /// The run as it was asked, with the user's correction as its SQL when there is one.
    fn load_run(&self, run: RunId) -> Result<Option<RunOutcome>, HistoryError> {
        let Some(mut outcome) = self.outcome(run)? else {
            return Ok(None);
        };
        if let Some(sql) = self.correction_of(run)? {
            outcome.sql = Some(sql);
        }
        Ok(Some(outcome))
    }

    fn retraining_status(&self, threshold: u64) -> Result<Option<RetrainingStatus>, HistoryError> {
        Ok(Some(HistoryStore::retraining_status(self, threshold)?))
    }

    fn verified_pairs(&self, scope: &DbScope) -> Result<Option<u64>, HistoryError> {
        Ok(Some(self.pairs(Some(scope))?.len() as u64))
    }

    fn record_follow_up(
        &mut self,
        scope: &DbScope,
        outcome: &RunOutcome,
        parent: Option<RunId>,
    ) -> Result<RunId, HistoryError> {
        Ok(self.record_in_thread(scope, outcome, parent)?)
    }
}

/// Puts the store in WAL mode. Switching needs the file to itself for a moment: when
/// another process is opening the same new store, SQLite may answer "busy" without
/// waiting, so this retries within [`BUSY_TIMEOUT`].
fn switch_to_wal(conn: &Connection) -> rusqlite::Result<()> {
    let started = Instant::now();
    loop {
        match conn.pragma_update(None, "journal_mode", "WAL") {
            Err(rusqlite::Error::SqliteFailure(e, _))
                if matches!(e.code, ErrorCode::DatabaseBusy | ErrorCode::DatabaseLocked)
                    && started.elapsed() < BUSY_TIMEOUT =>
            {
                std::thread::sleep(Duration::from_millis(10));
            }
            other => return other,
        }
    }
}

/// The scope of an open database: its canonical path and schema fingerprint.
pub fn scope_of(db: &ReadOnlyDb) -> Result<DbScope, crate::core::db::schema::SchemaError> {
    let path = std::fs::canonicalize(db.path()).unwrap_or_else(|_| db.path().to_path_buf());
    Ok(DbScope {
        path: path.display().to_string(),
        fingerprint: db.schema()?.fingerprint(),
    })
}

/// The whole-schema text the prompt holds for `db` (what a correction made outside a run
/// is exported with).
pub(crate) fn whole_schema_text(db: &ReadOnlyDb) -> Option<String> {
    db.schema()
        .ok()
        .map(|schema| render_schema(schema, None, RenderOptions::default()))
}

/// Runs a proposed correction the way the pipeline runs the model's SQL: through the guard,
/// then read-only with the time limit. Refuses it when either says no.
pub(crate) fn verify_sql(
    db: &ReadOnlyDb,
    sql: &str,
    limits: ExecLimits,
) -> Result<QueryResult, StoreError> {
    let sql = clean_sql(sql);
    // The error already says "the correction was refused: "; the guard's own "refused: "
    // would read twice.
    db.check(&sql).map_err(|e| {
        let reason = e.to_string();
        let reason = reason
            .strip_prefix("refused: ")
            .unwrap_or(&reason)
            .to_string();
        StoreError::CorrectionRefused(reason)
    })?;
    db.execute(&sql, limits).map_err(|e| {
        StoreError::CorrectionRefused(format!("'{}' does not run: {e}", one_line(&sql)))
    })
}

/// Questions compared for duplicates: lower case, words only.
pub(crate) fn normalize_question(question: &str) -> String {
    question
        .split(|c: char| !c.is_alphanumeric())
        .filter(|w| !w.is_empty())
        .map(str::to_lowercase)
        .collect::<Vec<_>>()
        .join(" ")
}

/// SQL as stored: trimmed, without a trailing semicolon.
pub(crate) fn clean_sql(sql: &str) -> String {
    sql.trim().trim_end_matches(';').trim().to_string()
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

pub(crate) fn pairs_revision(conn: &Connection) -> Result<i64, StoreError> {
    Ok(conn
        .query_row(
            "SELECT value FROM meta WHERE key = 'pairs_revision'",
            [],
            |row| row.get(0),
        )
        .optional()?
        .unwrap_or(0))
}

fn bump_revision(conn: &Connection) -> Result<(), StoreError> {
    conn.execute(
        "UPDATE meta SET value = value + 1 WHERE key = 'pairs_revision'",
        [],
    )?;
    Ok(())
}

fn insert_correction(
    conn: &Connection,
    scope_id: i64,
    run: Option<RunId>,
    question: &str,
    sql: &str,
    prompt_id: Option<i64>,
) -> Result<PairId, StoreError> {
    let now = now_secs();
    conn.execute(
        "INSERT INTO pairs (scope_id, run_id, question, sql, source, prompt_id, created_at,
            updated_at)
         VALUES (?1, ?2, ?3, ?4, 'correction', ?5, ?6, ?6)",
        params![
            scope_id,
            run,
            question.trim(),
            clean_sql(sql),
            prompt_id,
            now
        ],
    )?;
    let pair = conn.last_insert_rowid();
    conn.execute(
        "INSERT INTO feedback_log (kind, run_id, pair_id, at) VALUES ('correction', ?1, ?2, ?3)",
        params![run, pair, now],
    )?;
    bump_revision(conn)?;
    Ok(pair)
}

const PAIR_SELECT: &str = "SELECT p.id, s.path, s.fingerprint, p.run_id, p.question, p.sql,
        p.source, pr.schema_text, p.derived_from, p.created_at, p.updated_at
    FROM pairs p JOIN scopes s ON s.id = p.scope_id LEFT JOIN prompts pr ON pr.id = p.prompt_id";

fn pair_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<VerifiedPair> {
    let source: String = row.get(6)?;
    Ok(VerifiedPair {
        id: row.get(0)?,
        scope: DbScope {
            path: row.get(1)?,
            fingerprint: row.get(2)?,
        },
        run_id: row.get(3)?,
        question: row.get(4)?,
        sql: row.get(5)?,
        source: PairSource::parse(&source),
        schema_text: row.get(7)?,
        derived_from: row.get(8)?,
        created_at: row.get(9)?,
        updated_at: row.get(10)?,
    })
}

/// scope id, question, final SQL, error, prompt id.
type RatedRun = (i64, String, Option<String>, Option<String>, Option<i64>);

/// Scope and prompt helpers usable inside an open transaction.
struct StoreTx<'a>(&'a Connection);

impl StoreTx<'_> {
    fn scope_id(&self, scope: &DbScope) -> Result<i64, StoreError> {
        self.0.execute(
            "INSERT OR IGNORE INTO scopes (path, fingerprint, first_seen) VALUES (?1, ?2, ?3)",
            params![scope.path, scope.fingerprint, now_secs()],
        )?;
        Ok(self.0.query_row(
            "SELECT id FROM scopes WHERE path = ?1 AND fingerprint = ?2",
            params![scope.path, scope.fingerprint],
            |row| row.get(0),
        )?)
    }

    fn prompt_id(&self, schema_text: &str) -> Result<i64, StoreError> {
        let digest = hex::encode(Sha256::digest(schema_text.as_bytes()));
        self.0.execute(
            "INSERT OR IGNORE INTO prompts (sha256, schema_text) VALUES (?1, ?2)",
            params![digest, schema_text],
        )?;
        Ok(self.0.query_row(
            "SELECT id FROM prompts WHERE sha256 = ?1",
            params![digest],
            |row| row.get(0),
        )?)
    }
}

#[derive(Debug, Serialize, Deserialize)]
struct StoredExample {
    question: String,
    sql: String,
}

impl From<&Example> for StoredExample {
    fn from(example: &Example) -> Self {
        Self {
            question: example.question.clone(),
            sql: example.sql.clone(),
        }
    }
}

impl From<StoredExample> for Example {
    fn from(stored: StoredExample) -> Self {
        Example {
            question: stored.question,
            sql: stored.sql,
        }
    }
}

fn now_secs() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| i64::try_from(d.as_secs()).unwrap_or(i64::MAX))
        .unwrap_or(0)
}
