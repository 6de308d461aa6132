//! What front ends need from the run history, without naming its storage.
//!
//! The feedback store implements this over its own SQLite database; the TUI's tests use an
//! in-memory implementation. Runs are scoped to the database they were asked on.

use serde::{Deserialize, Serialize};

use crate::core::pipeline::outcome::RunOutcome;

pub(crate) type RunId = i64;

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
    /// The run this one follows up (its conversation), if any.
    #[serde(default)]
    pub follows: Option<RunId>,
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
    fn retraining_status(&self, threshold: u64) -> Result<Option<RetrainingStatus>, HistoryError> {
        let _ = threshold;
        Ok(None)
    }
    /// Verified question/SQL pairs on `scope`, what `train run` trains on (`None`: not
    /// known to this store).
    fn verified_pairs(&self, scope: &DbScope) -> Result<Option<u64>, HistoryError> {
        let _ = scope;
        Ok(None)
    }
    /// Records a run that follows up `parent` (its thread); stores without threads record
    /// it alone.
    fn record_follow_up(
        &mut self,
        scope: &DbScope,
        outcome: &RunOutcome,
        parent: Option<RunId>,
    ) -> Result<RunId, HistoryError> {
        let _ = parent;
        self.record_run(scope, outcome)
    }
}

/// Whether enough corrections and thumbs-downs piled up since the last training.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
pub struct RetrainingStatus {
    /// Corrections and thumbs-downs since the last training mark.
    pub new_feedback: u64,
    pub threshold: u64,
    pub due: bool,
    /// Verified pairs on the database, when the caller asked (training needs
    /// `core::finetune::MIN_TRAINING_PAIRS`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub verified_pairs: Option<u64>,
}

/// `YYYY-MM-DD HH:MM` in UTC from seconds since the epoch.
pub(crate) fn utc_time(secs: i64) -> String {
    let days = secs.div_euclid(86_400);
    let rest = secs.rem_euclid(86_400);
    // Howard Hinnant's civil-from-days.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = doy - (153 * mp + 2) / 5 + 1;
    let month = if mp < 10 { mp + 3 } else { mp - 9 };
    let year = yoe + era * 400 + i64::from(month <= 2);
    format!(
        "{year:04}-{month:02}-{day:02} {:02}:{:02}",
        rest / 3600,
        (rest % 3600) / 60
    )
}

#[cfg(test)]
mod tests {
    use super::utc_time;

    #[test]
    fn formats_utc_times() {
        assert_eq!(utc_time(0), "1970-01-01 00:00");
        assert_eq!(utc_time(1_700_000_000), "2023-11-14 22:13");
        assert_eq!(utc_time(1_709_210_096), "2024-02-29 12:34");
    }
}
