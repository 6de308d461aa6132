//! An in-memory [`RunHistory`] for tests and benchmarks of the app's own cost: the app
//! itself records into the persistent store (`tui::open_history`).

use std::time::{SystemTime, UNIX_EPOCH};

use crate::core::feedback::history::{
    DbScope, HistoryEntry, HistoryError, HistoryStatus, Rating, RunHistory, RunId,
};
use crate::core::pipeline::outcome::RunOutcome;

struct StoredRun {
    id: RunId,
    scope: DbScope,
    outcome: RunOutcome,
    asked_at: i64,
    rating: Option<Rating>,
    note: Option<String>,
    correction: Option<String>,
}

#[derive(Default)]
pub struct MemoryHistory {
    runs: Vec<StoredRun>,
}

impl MemoryHistory {
    pub fn new() -> Self {
        Self::default()
    }

    /// The note stored with a run's rating.
    pub fn note(&self, run: RunId) -> Option<&str> {
        self.find(run).and_then(|r| r.note.as_deref())
    }

    fn find(&self, run: RunId) -> Option<&StoredRun> {
        self.runs.iter().find(|r| r.id == run)
    }

    fn find_mut(&mut self, run: RunId) -> Result<&mut StoredRun, HistoryError> {
        self.runs
            .iter_mut()
            .find(|r| r.id == run)
            .ok_or(HistoryError::UnknownRun(run))
    }
}

impl RunHistory for MemoryHistory {
    fn record_run(&mut self, scope: &DbScope, outcome: &RunOutcome) -> Result<RunId, HistoryError> {
        let id = self.runs.last().map_or(1, |r| r.id + 1);
        let asked_at = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .map(|d| d.as_secs() as i64)
            .unwrap_or(0);
        self.runs.push(StoredRun {
            id,
            scope: scope.clone(),
            outcome: outcome.clone(),
            asked_at,
            rating: None,
            note: None,
            correction: None,
        });
        Ok(id)
    }

    fn rate(&mut self, run: RunId, rating: Rating, note: Option<&str>) -> Result<(), HistoryError> {
        let stored = self.find_mut(run)?;
        stored.rating = Some(rating);
        stored.note = note.map(str::to_string);
        Ok(())
    }

    fn correct(&mut self, run: RunId, sql: &str) -> Result<(), HistoryError> {
        if sql.trim().is_empty() {
            return Err(HistoryError::CorrectionRefused("the SQL is empty".into()));
        }
        self.find_mut(run)?.correction = Some(sql.to_string());
        Ok(())
    }

    fn list(&self, scope: &DbScope, limit: usize) -> Result<Vec<HistoryEntry>, HistoryError> {
        Ok(self
            .runs
            .iter()
            .rev()
            .filter(|r| &r.scope == scope)
            .take(limit)
            .map(|r| HistoryEntry {
                id: r.id,
                question: r.outcome.question.clone(),
                sql: r.correction.clone().or_else(|| r.outcome.sql.clone()),
                status: if r.correction.is_some() {
                    HistoryStatus::Corrected
                } else if r.outcome.error.is_some() {
                    HistoryStatus::Failed
                } else if r.rating.is_some() {
                    HistoryStatus::Rated
                } else {
                    HistoryStatus::Ok
                },
                row_count: r
                    .outcome
                    .result
                    .as_ref()
                    .map(|res| res.total_rows.unwrap_or(res.rows.len() as u64)),
                rating: r.rating,
                asked_at: r.asked_at,
                total_ms: r.outcome.timings.total_ms,
                // Threads are kept by the store on disk; this one keeps runs only.
                follows: None,
            })
            .collect())
    }

    fn load_run(&self, run: RunId) -> Result<Option<RunOutcome>, HistoryError> {
        Ok(self.find(run).map(|r| {
            let mut outcome = r.outcome.clone();
            if let Some(sql) = &r.correction {
                outcome.sql = Some(sql.clone());
            }
            outcome
        }))
    }
}
