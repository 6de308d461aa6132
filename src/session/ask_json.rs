//! The JSON of one answered question, as `ask --json` prints it and `serve` returns it.

use serde::Serialize;

use crate::core::db::exec::{Cell, Cut};
use crate::core::feedback::history::RetrainingStatus;
use crate::core::pipeline::outcome::{Attempt, Confidence, RunOutcome, Source, Timings};
use crate::core::retrieval::provider::ContextMode;

/// The `--json` contract other tools build on.
#[derive(Debug, Serialize)]
pub struct AskJson<'a> {
    pub question: &'a str,
    pub sql: Option<&'a str>,
    pub columns: Vec<String>,
    pub rows: Vec<Vec<Cell>>,
    pub row_count: Option<u64>,
    pub truncated: bool,
    /// Which limit stopped the rows when `truncated`: "row_limit" or "byte_limit".
    #[serde(skip_serializing_if = "Option::is_none")]
    pub cut: Option<Cut>,
    pub answer: Option<&'a str>,
    pub attempts: &'a [Attempt],
    pub tables_used: &'a [String],
    pub tables_sent: &'a [String],
    pub context_mode: ContextMode,
    /// The rewrites and checks that fired on the run's queries.
    pub rewrites: &'a [String],
    /// Which step produced the query: {"kind": "first_attempt"}, {"kind": "repaired",
    /// "attempt": N} or {"kind": "fallback_vote", "agreed": A, "samples": S}; null when
    /// nothing ran.
    pub source: Option<Source>,
    /// {"level": "high"|"medium"|"low", "reasons": [...], "sql_logprob": mean token
    /// log-probability of the query when the engine reports it}; null when nothing ran.
    pub confidence: Option<&'a Confidence>,
    pub timings: &'a Timings,
    pub model: &'a str,
    pub error: Option<&'a str>,
    /// The id the run was recorded under in the history store (for `rate` and `correct`).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub run_id: Option<i64>,
    /// Whether enough corrections and thumbs-downs piled up to retrain.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub retraining: Option<RetrainingStatus>,
    /// With `--follow-up`: the run this question continued.
    #[serde(skip_serializing_if = "Option::is_none")]
    pub follows: Option<i64>,
}

impl<'a> AskJson<'a> {
    pub fn from_outcome(outcome: &'a RunOutcome) -> Self {
        let (columns, rows, row_count, truncated, cut) = match &outcome.result {
            Some(result) => (
                result.columns.clone(),
                result.rows.clone(),
                result.total_rows,
                result.truncated(),
                result.cut,
            ),
            None => (Vec::new(), Vec::new(), None, false, None),
        };
        Self {
            question: &outcome.question,
            sql: outcome.sql.as_deref(),
            columns,
            rows,
            row_count,
            truncated,
            cut,
            answer: outcome.answer.as_deref(),
            attempts: &outcome.attempts,
            tables_used: &outcome.tables_used,
            tables_sent: &outcome.tables_sent,
            context_mode: outcome.context_mode,
            rewrites: &outcome.rewrites,
            source: outcome.source,
            confidence: outcome.confidence.as_ref(),
            timings: &outcome.timings,
            model: &outcome.model,
            error: outcome.error.as_deref(),
            run_id: None,
            retraining: None,
            follows: None,
        }
    }
}
