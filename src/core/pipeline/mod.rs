//! The one pipeline every front end runs: context -> generate -> rewrite -> check ->
//! execute -> repair -> answer, driven by [`run_question`].
//!
//! Synchronous and single-threaded on purpose: the caller owns the model and the database
//! (the TUI runs this on its inference worker thread, `ask` and `eval` on the main thread)
//! and observes progress through [`PipelineEvent`]s.

mod answer;
mod bridge_join;
pub mod extract;
pub mod follow_up;
mod generate;
pub mod grammar;
pub mod grounding;
pub mod intent;
mod invented_join;
mod missing_join;
pub mod outcome;
pub mod prompt;
mod referenced_key;
pub mod repair;
mod run;
pub mod vote;

use std::time::{Duration, Instant};

use crate::core::db::exec::{ExecLimits, ReadOnlyDb};
use crate::core::model::{LanguageModel, LlmError, Sampling};
use crate::core::retrieval::provider::ContextProvider;
use crate::core::rewrite::RewriteSettings;

pub use follow_up::EarlierTurn;
pub use outcome::{
    Attempt, Confidence, ConfidenceLevel, PipelineEvent, PromptRecord, RunOutcome, Source, Stage,
    Timings,
};
use run::{Answered, Ending, Run};

/// How one question is answered. Built from the `[pipeline]` and `[rewrites]` settings
/// (`config::Settings::pipeline_config`), whose defaults live in the embedded config.
#[derive(Debug, Clone, PartialEq)]
pub struct PipelineConfig {
    pub max_repairs: u32,
    pub limits: ExecLimits,
    pub answer: bool,
    pub max_sql_tokens: usize,
    pub max_answer_tokens: usize,
    /// Rows of the result shown to the model when it writes the answer.
    pub answer_rows: usize,
    pub sampling: Sampling,
    /// Text the SQL is forced to start with, after the opening fence. `"SELECT "` stops
    /// small coder models from starting their memorised `T1`/`T2` join pattern, which on
    /// Chinook made them join tables that do not exist (see README, "Accuracy").
    pub sql_opening: String,
    /// Queries generated for the first attempt: 1 is plain greedy decoding; more adds
    /// sampled candidates, all are executed and the result most agree on wins
    /// (self-consistency, see [`vote`]).
    pub candidates: u32,
    /// Sampling temperature of every sampled query: extra candidates, re-samples of a
    /// repeated repair and the fallback.
    pub candidate_temperature: f32,
    /// Constrain generation with a GBNF grammar of the schema's names ([`grammar`]).
    pub grammar: bool,
    /// The same grammar on queries written again after a failure (a repair that repeated
    /// its mistake, the fallback's samples) even when `grammar` is off.
    pub retry_grammar: bool,
    /// Queries sampled afresh from the question when every repair failed; the result
    /// most of them agree on is the answer. 0 turns this off.
    pub fallback_candidates: u32,
    /// Time the repairs of one question may take, counted from its first failed query:
    /// past it no new query is written (`None`: no limit).
    pub repair_budget: Option<Duration>,
    /// Which rewrites and checks of `core::rewrite` run on each generated query.
    pub rewrites: RewriteSettings,
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("cancelled")]
    Cancelled,
}

/// Runs one question end to end. A question that asks to change data is refused before
/// anything is generated ([`intent`]).
pub fn run_question(
    model: &mut dyn LanguageModel,
    db: &ReadOnlyDb,
    context: &mut dyn ContextProvider,
    question: &str,
    config: &PipelineConfig,
    on_event: &mut dyn FnMut(PipelineEvent<'_>),
) -> Result<RunOutcome, PipelineError> {
    run_follow_up(model, db, context, question, &[], config, on_event)
}

/// Runs a question that continues a conversation: `earlier` (oldest first, see
/// [`follow_up::recent_turns`]) go to the model as past turns after the cached schema
/// prefix, and retrieval searches with their questions too.
pub fn run_follow_up(
    model: &mut dyn LanguageModel,
    db: &ReadOnlyDb,
    context: &mut dyn ContextProvider,
    question: &str,
    earlier: &[EarlierTurn],
    config: &PipelineConfig,
    on_event: &mut dyn FnMut(PipelineEvent<'_>),
) -> Result<RunOutcome, PipelineError> {
    let started = Instant::now();
    if let Some(refusal) = intent::write_request(question) {
        tracing::info!(question, "refused before generation: {refusal}");
        return Ok(RunOutcome::refused(question, model.model_id(), refusal));
    }
    on_event(PipelineEvent::Stage(Stage::Retrieving));
    let prompt_context = context.context_for(&follow_up::retrieval_text(question, earlier));
    let retrieve_ms = millis(started.elapsed());
    on_event(PipelineEvent::Context(&prompt_context));
    tracing::info!(
        question,
        retrieve_ms,
        tables = ?prompt_context.tables_sent,
        "question: context retrieved"
    );

    let mut run = Run::new(db, question, config, prompt_context, earlier);
    run.timings.retrieve_ms = retrieve_ms;
    let mut ending = run.attempt_and_repair(model, on_event)?;
    if let Ending::Unanswered { refused: false, .. } = ending
        && config.fallback_candidates > 0
        && !run.out_of_repair_time()
    {
        ending = run.fall_back(model, on_event, ending)?;
    }
    let answered = match ending {
        Ending::Answered {
            sql,
            result,
            source,
        } => {
            on_event(PipelineEvent::Executed(&result));
            let answer = if config.answer {
                Some(run.answer(model, &sql, &result, on_event)?)
            } else {
                None
            };
            let replaced = answer.as_ref().is_some_and(|a| a.replaced);
            let confidence = Confidence::assess(source, &result, run.sql_logprob, replaced);
            // A fallback answer is a guess and says so where it is read.
            let text = answer.map(|a| match source.guess_prefix() {
                Some(prefix) => format!("{prefix}{}", a.text),
                None => a.text,
            });
            Ok(Answered {
                sql,
                result,
                text,
                source,
                confidence,
            })
        }
        Ending::Unanswered { reason, .. } => Err(reason),
    };
    run.timings.total_ms = millis(started.elapsed());
    let outcome = run.into_outcome(model.model_id(), answered);
    log_outcome(&outcome);
    Ok(outcome)
}

/// One line per attempt and one for the end, to the log file (never the terminal).
fn log_outcome(outcome: &RunOutcome) {
    for (n, attempt) in outcome.attempts.iter().enumerate() {
        match &attempt.error {
            Some(error) => {
                tracing::info!(attempt = n + 1, sql = %attempt.sql, %error, "attempt failed")
            }
            None => tracing::info!(attempt = n + 1, sql = %attempt.sql, "attempt ran"),
        }
    }
    let t = &outcome.timings;
    match &outcome.error {
        Some(error) => {
            tracing::warn!(question = %outcome.question, %error, total_ms = t.total_ms, "unanswered")
        }
        None => tracing::info!(
            question = %outcome.question,
            rows = outcome.result.as_ref().map_or(0, |r| r.rows.len()),
            source = ?outcome.source,
            confidence = outcome.confidence.as_ref().map_or("", |c| c.level.label()),
            retrieve_ms = t.retrieve_ms,
            generate_ms = t.generate_ms,
            execute_ms = t.execute_ms,
            answer_ms = t.answer_ms,
            total_ms = t.total_ms,
            "answered"
        ),
    }
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
