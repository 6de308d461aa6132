//! `nano-analyst ask DB "QUESTION" [--json] [--no-answer]`.

use std::io::Write;

use serde::Serialize;

use crate::cli::AskArgs;
use crate::commands::feedback::retraining_note;
use crate::commands::text_table;
use crate::core::db::exec::{Cell, Cut};
use crate::core::feedback::history::RetrainingStatus;
use crate::core::pipeline::outcome::{Attempt, PipelineEvent, RunOutcome, Timings};
use crate::core::retrieval::provider::ContextMode;
use crate::error::AppError;
use crate::session::{Analyst, RuntimeOptions};

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
            timings: &outcome.timings,
            model: &outcome.model,
            error: outcome.error.as_deref(),
            run_id: None,
            retraining: None,
            follows: None,
        }
    }
}

/// Returns whether the question was answered (the exit code follows it).
pub fn run(args: &AskArgs, options: &mut RuntimeOptions) -> Result<bool, AppError> {
    if args.question.trim().is_empty() {
        return Err(AppError::Usage("the question is empty".into()));
    }
    if args.no_answer {
        options.pipeline.answer = false;
    }
    let mut analyst = Analyst::open(&args.database, options)?;
    if let Some(note) = &analyst.retrieval_note {
        crate::errln!("nano-analyst: {note}");
    }
    let stream_answer = !args.json;
    let mut stdout = std::io::stdout();
    let mut answer_started = false;
    let mut sql_so_far = String::new();
    let mut sql_attempt = 0;
    let mut on_event = |event: PipelineEvent<'_>| {
        if !stream_answer {
            return;
        }
        match event {
            PipelineEvent::SqlText { attempt, text } => {
                if attempt != sql_attempt {
                    sql_attempt = attempt;
                    sql_so_far.clear();
                }
                sql_so_far.push_str(text);
            }
            PipelineEvent::SqlRestarted { .. } => sql_so_far.clear(),
            PipelineEvent::AttemptFailed { attempt, error, .. } => {
                crate::outln!("attempt {attempt} failed: {error}");
            }
            PipelineEvent::Executed(result) => {
                crate::outln!("{}\n", sql_so_far.trim());
                crate::out!("{}", text_table::render(result, 50));
                crate::outln!("({})\n", result.row_summary());
            }
            PipelineEvent::AnswerText(text) => {
                answer_started = true;
                crate::out!("{text}");
                let _ = stdout.flush();
            }
            _ => {}
        }
    };
    let (outcome, follows) = if args.follow_up {
        analyst.ask_follow_up(&args.question, &mut on_event)?
    } else {
        (analyst.ask(&args.question, &mut on_event)?, None)
    };
    if args.follow_up && follows.is_none() {
        crate::errln!("nano-analyst: no earlier question on this database; asked on its own");
    }
    let retraining = analyst.retraining_status();
    if args.json {
        let mut json = AskJson::from_outcome(&outcome);
        json.run_id = analyst.last_run();
        json.follows = follows;
        json.retraining = retraining;
        let json = serde_json::to_string(&json).map_err(AppError::json("the result"))?;
        crate::outln!("{json}");
    } else {
        if answer_started {
            crate::outln!();
        }
        if let Some(run) = analyst.last_run() {
            let db = args.database.display();
            crate::outln!(
                "(run {run}: nano-analyst rate {db} --run {run} up|down, or correct {db} --run {run} --sql \"...\")"
            );
        }
        if let Some(note) = retraining.as_ref().and_then(retraining_note) {
            crate::errln!("note: {note}");
        }
    }
    if let Some(error) = &outcome.error {
        if !args.json {
            crate::errln!("nano-analyst: {error}");
        }
        return Ok(false);
    }
    Ok(true)
}
