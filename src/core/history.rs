//! What front ends need from the run history, without naming its storage.
//!
//! The feedback store implements this over its own SQLite database; the TUI's tests use an
//! in-memory implementation. Runs are scoped to the database they were asked on.

use serde::{Deserialize, Serialize};

use crate::core::pipeline::RunOutcome;

pub type RunId = i64;

/// Identifies a user database across runs: its path and its schema fingerprint.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct DbScope {
    pub path: String,
    pub fingerprint: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Rating {
    Up,
    Down,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum HistoryStatus {
    Ok,
    Failed,
    Corrected,
    Rated,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct HistoryEntry {
    pub id: RunId,
    pub question: String,
    /// The corrected SQL when there is one, else the run's own.
    pub sql: Option<String>,
    pub status: HistoryStatus,
    pub row_count: Option<u64>,
    pub rating: Option<Rating>,
    /// Seconds since the Unix epoch.
    pub asked_at: i64,
    pub total_ms: u64,
}

#[derive(Debug, thiserror::Error)]
pub enum HistoryError {
    #[error("no run with id {0}")]
    UnknownRun(RunId),
    #[error("the correction was refused: {0}")]
    CorrectionRefused(String),
    #[error("history store error: {0}")]
    Storage(String),
}

pub trait RunHistory {
    fn record_run(&mut self, scope: &DbScope, outcome: &RunOutcome) -> Result<RunId, HistoryError>;
    fn rate(&mut self, run: RunId, rating: Rating, note: Option<&str>) -> Result<(), HistoryError>;
    /// Stores `sql` as the correct answer to the run's question. The caller has already
    /// executed it read-only; stores may check again.
    fn correct(&mut self, run: RunId, sql: &str) -> Result<(), HistoryError>;
    /// Newest first.
    fn list(&self, scope: &DbScope, limit: usize) -> Result<Vec<HistoryEntry>, HistoryError>;
    fn load_run(&self, run: RunId) -> Result<Option<RunOutcome>, HistoryError>;
    /// New corrections and thumbs-downs since the last training, against `threshold`
    /// (`None` for stores that do not track training).
    fn retraining_status(
        &self,
        threshold: u64,
    ) -> Result<Option<crate::core::store::RetrainingStatus>, HistoryError> {
        let _ = threshold;
        Ok(None)
    }
}
