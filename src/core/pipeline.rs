//! The one pipeline every front end runs: context -> generate -> guard -> execute ->
//! repair -> answer.
//!
//! Synchronous and single-threaded on purpose: the caller owns the model and the database
//! (the TUI runs this on its inference worker thread, `ask` and `eval` on the main thread)
//! and observes progress through [`PipelineEvent`]s.

use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::core::exec::{ExecError, ExecLimits, QueryResult, ReadOnlyDb};
use crate::core::extract::{SQL_FENCE_CLOSE, SQL_FENCE_OPEN, extract_sql};
use crate::core::flags::{drop_unnamed_flag_filters, filter_named_flags};
use crate::core::grammar::sql_grammar;
use crate::core::ground::ground_literals;
use crate::core::group_key::group_by_entity_key;
use crate::core::guard::{GuardError, check_read_only, referenced_tables};
use crate::core::llm_api::{CompletionRequest, LanguageModel, LlmError, Sampling};
use crate::core::prompt::{
    Example, GlossaryEntry, answer_message, question_turns, repair_message, sql_reply,
    system_message,
};
use crate::core::repair::{fix_column_reference, quote_bare_names, repair_hints};
use crate::core::schema::Schema;
use crate::core::schema_render::{RenderOptions, render_schema};
use crate::core::simplify::{
    drop_unused_joins, intersect_both_values, show_group_columns, unlinked_join_condition,
};
use crate::core::vote::pick_by_vote;

/// How the schema was put into the prompt.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ContextMode {
    /// The whole schema fits the budget and was sent.
    WholeSchema,
    /// Only the retrieved tables were sent.
    Subset,
}

/// Everything the prompt says about the database for one question.
#[derive(Debug, Clone, PartialEq)]
pub struct PromptContext {
    pub schema_text: String,
    pub tables_sent: Vec<String>,
    pub mode: ContextMode,
    pub examples: Vec<Example>,
    pub glossary: Vec<GlossaryEntry>,
    /// Why each table was chosen, for the schema pane and `--json` (empty for whole schema).
    pub reasons: Vec<String>,
}

/// Chooses what the prompt says about the database. Retrieval and example memory plug in
/// here; [`WholeSchemaContext`] is the simplest provider.
pub trait ContextProvider {
    fn context_for(&mut self, question: &str) -> PromptContext;
}

/// Sends the whole schema, in the database's own order (stable, so the prefix is cached).
pub struct WholeSchemaContext {
    schema_text: String,
    tables: Vec<String>,
}

impl WholeSchemaContext {
    pub fn new(schema: &Schema) -> Self {
        Self::with_options(schema, RenderOptions::default())
    }

    pub fn with_options(schema: &Schema, options: RenderOptions) -> Self {
        Self {
            schema_text: render_schema(schema, None, options),
            tables: schema.tables.iter().map(|t| t.name.clone()).collect(),
        }
    }
}

impl ContextProvider for WholeSchemaContext {
    fn context_for(&mut self, _question: &str) -> PromptContext {
        PromptContext {
            schema_text: self.schema_text.clone(),
            tables_sent: self.tables.clone(),
            mode: ContextMode::WholeSchema,
            examples: Vec::new(),
            glossary: Vec::new(),
            reasons: Vec::new(),
        }
    }
}

/// Verified question/SQL pairs similar to a question (the example memory plugs in here).
pub trait ExampleSource {
    fn examples_for(&mut self, question: &str, limit: usize) -> Vec<Example>;
}

/// A schema provider plus, optionally, example memory and glossary entries.
pub struct ComposedContext {
    pub schema: Box<dyn ContextProvider + Send>,
    pub examples: Option<Box<dyn ExampleSource + Send>>,
    pub examples_per_question: usize,
}

impl ContextProvider for ComposedContext {
    fn context_for(&mut self, question: &str) -> PromptContext {
        let mut context = self.schema.context_for(question);
        if let Some(source) = self.examples.as_mut() {
            context.examples = source.examples_for(question, self.examples_per_question);
        }
        context
    }
}

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
    /// (self-consistency, see `core::vote`).
    pub candidates: u32,
    /// Sampling temperature of the extra candidates.
    pub candidate_temperature: f32,
    /// Constrain generation with a GBNF grammar of the schema's names (`core::grammar`).
    pub grammar: bool,
    /// Remove inner joins the generated query never reads (`core::simplify`).
    pub drop_unused_joins: bool,
    /// Rewrite one column equal to two values as an INTERSECT (`core::simplify`).
    pub intersect_both_values: bool,
    /// Check text filters against the database's values (`core::ground`).
    pub ground_literals: bool,
    /// Filter on yes/no columns the question names and the query forgot (`core::flags`).
    pub filter_named_flags: bool,
    /// Drop filters on yes/no columns the question never names (`core::flags`).
    pub drop_unnamed_flags: bool,
    /// Look a text filter up through a foreign key when only a linked table holds the
    /// value (`core::ground`; needs `ground_literals`).
    pub lookup_through_keys: bool,
    /// Group by the key, not only the name, when names repeat (`core::group_key`).
    pub group_by_entity_key: bool,
    /// Show the grouped columns of a query that returns only aggregates
    /// (`core::simplify`).
    pub show_group_columns: bool,
    /// Send a query whose join condition connects no two tables back for repair.
    pub check_join_conditions: bool,
    /// Queries sampled afresh from the question when every repair failed; the result
    /// most of them agree on is the answer. 0 turns this off.
    pub fallback_candidates: u32,
}

impl Default for PipelineConfig {
    fn default() -> Self {
        Self {
            max_repairs: 3,
            limits: ExecLimits::default(),
            answer: true,
            max_sql_tokens: 256,
            max_answer_tokens: 96,
            answer_rows: 20,
            sampling: Sampling::Greedy,
            sql_opening: "SELECT ".into(),
            candidates: 1,
            candidate_temperature: 0.7,
            grammar: false,
            drop_unused_joins: true,
            intersect_both_values: true,
            ground_literals: true,
            filter_named_flags: true,
            drop_unnamed_flags: true,
            lookup_through_keys: true,
            group_by_entity_key: true,
            show_group_columns: true,
            check_join_conditions: true,
            fallback_candidates: 3,
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "stage", content = "attempt")]
pub enum Stage {
    Retrieving,
    Generating(u32),
    Executing(u32),
    Repairing(u32),
    Answering,
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum PipelineEvent<'a> {
    Stage(Stage),
    Context(&'a PromptContext),
    /// A piece of the SQL being generated for `attempt` (1-based).
    SqlText {
        attempt: u32,
        text: &'a str,
    },
    /// The SQL streamed so far for `attempt` repeated a failed query and is being
    /// generated again; front ends clear what they showed for it.
    SqlRestarted {
        attempt: u32,
    },
    AttemptFailed {
        attempt: u32,
        sql: &'a str,
        error: &'a str,
    },
    Executed(&'a QueryResult),
    AnswerText(&'a str),
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Attempt {
    pub sql: String,
    pub error: Option<String>,
}

#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
pub struct Timings {
    pub retrieve_ms: u64,
    pub prompt_tokens: usize,
    pub cached_prompt_tokens: usize,
    pub ttft_ms: u64,
    pub generate_ms: u64,
    pub execute_ms: u64,
    pub answer_ms: u64,
    pub total_ms: u64,
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct RunOutcome {
    pub question: String,
    /// The SQL whose result is shown (the last attempt's, when every attempt failed).
    pub sql: Option<String>,
    pub result: Option<QueryResult>,
    pub answer: Option<String>,
    pub attempts: Vec<Attempt>,
    pub tables_sent: Vec<String>,
    pub tables_used: Vec<String>,
    pub context_mode: ContextMode,
    pub timings: Timings,
    pub model: String,
    /// Why the question could not be answered; `None` when it was.
    pub error: Option<String>,
}

impl RunOutcome {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.result.is_some()
    }
}

#[derive(Debug, thiserror::Error)]
pub enum PipelineError {
    #[error(transparent)]
    Llm(#[from] LlmError),
    #[error("cancelled")]
    Cancelled,
}

/// Runs one question end to end.
pub fn run_question(
    model: &mut dyn LanguageModel,
    db: &ReadOnlyDb,
    context: &mut dyn ContextProvider,
    question: &str,
    config: &PipelineConfig,
    on_event: &mut dyn FnMut(PipelineEvent<'_>),
) -> Result<RunOutcome, PipelineError> {
    let started = Instant::now();
    let mut timings = Timings::default();

    on_event(PipelineEvent::Stage(Stage::Retrieving));
    let prompt_context = context.context_for(question);
    timings.retrieve_ms = millis(started.elapsed());
    on_event(PipelineEvent::Context(&prompt_context));

    let mut messages = vec![system_message(&prompt_context.schema_text)];
    messages.extend(question_turns(
        question,
        &prompt_context.examples,
        &prompt_context.glossary,
    ));
    let question_turns_end = messages.len();
    let mut attempts: Vec<Attempt> = Vec::new();
    let mut success: Option<(String, QueryResult)> = None;
    let mut final_error: Option<String> = None;
    let mut refused = false;
    let total_attempts = config.max_repairs + 1;
    let grammar = if config.grammar {
        db.schema().ok().map(sql_grammar)
    } else {
        None
    };

    let mut schema_fix: Option<String> = None;
    for attempt in 1..=total_attempts {
        let stage = if attempt == 1 {
            Stage::Generating(1)
        } else {
            Stage::Repairing(attempt)
        };
        on_event(PipelineEvent::Stage(stage));
        let sql = if let Some(fixed) = schema_fix.take() {
            // The schema settled the error without the model (see `fix_column_reference`).
            let fixed = rewrite_sql(fixed, question, db, config).sql;
            on_event(PipelineEvent::SqlText {
                attempt,
                text: &fixed,
            });
            fixed
        } else {
            let mut sampling = config.sampling;
            let mut resamples = 0;
            let (completion, sql) = loop {
                let request = CompletionRequest {
                    messages: messages.clone(),
                    assistant_prefix: format!("{SQL_FENCE_OPEN}{}", config.sql_opening),
                    max_tokens: config.max_sql_tokens,
                    stop: vec![SQL_FENCE_CLOSE.to_string()],
                    sampling,
                    grammar: grammar.clone(),
                };
                if !config.sql_opening.is_empty() {
                    on_event(PipelineEvent::SqlText {
                        attempt,
                        text: &config.sql_opening,
                    });
                }
                let completion = model.complete(&request, &mut |text| {
                    on_event(PipelineEvent::SqlText { attempt, text });
                })?;
                let written = format!("{}{}", config.sql_opening, completion.text);
                let sql = tidy_generated_sql(&written, question, db, config);
                if sql.rewritten {
                    on_event(PipelineEvent::SqlRestarted { attempt });
                    on_event(PipelineEvent::SqlText {
                        attempt,
                        text: &sql.sql,
                    });
                }
                let sql = sql.sql;
                // Greedy decoding answers a repair turn with the query it already wrote more
                // often than not; sampling breaks the loop without a new prompt.
                let repeated = attempts.iter().any(|a| same_sql(&a.sql, &sql));
                if !repeated || resamples >= MAX_RESAMPLES {
                    break (completion, sql);
                }
                resamples += 1;
                sampling = Sampling::Temperature {
                    temperature: 0.7,
                    seed: attempt * 31 + resamples,
                };
                on_event(PipelineEvent::SqlRestarted { attempt });
            };
            if attempt == 1 {
                timings.prompt_tokens = completion.prompt_tokens;
                timings.cached_prompt_tokens = completion.cached_prompt_tokens;
                timings.ttft_ms = millis(completion.time_to_first_token);
            }
            timings.generate_ms += millis(completion.elapsed);
            if attempt == 1 && config.candidates > 1 {
                let voting = Instant::now();
                let sampler = Sampler {
                    db,
                    question,
                    config,
                    grammar: grammar.as_deref(),
                };
                let chosen = vote_among_candidates(model, &sampler, &messages, sql, on_event)?;
                timings.generate_ms += millis(voting.elapsed());
                chosen
            } else {
                sql
            }
        };

        let unlinked_join = config
            .check_join_conditions
            .then(|| unlinked_join_condition(&sql))
            .flatten();
        let failure = match (check_read_only(&sql), &unlinked_join) {
            (Err(GuardError::Empty), _) => Failure::Repairable(GuardError::Empty.to_string()),
            (Err(refused), _) => Failure::Final(refused.to_string()),
            (Ok(_), Some(condition)) => Failure::Repairable(unlinked_join_message(condition)),
            (Ok(_), None) => {
                on_event(PipelineEvent::Stage(Stage::Executing(attempt)));
                let executed = Instant::now();
                let outcome = db.execute(&sql, config.limits);
                timings.execute_ms += millis(executed.elapsed());
                match outcome {
                    Ok(result) => {
                        attempts.push(Attempt {
                            sql: sql.clone(),
                            error: None,
                        });
                        success = Some((sql, result));
                        break;
                    }
                    Err(ExecError::Cancelled) => return Err(PipelineError::Cancelled),
                    Err(error) if error.is_repairable() => Failure::Repairable(error.to_string()),
                    Err(error) => Failure::Final(error.to_string()),
                }
            }
        };
        let message = failure.message().to_string();
        on_event(PipelineEvent::AttemptFailed {
            attempt,
            sql: &sql,
            error: &message,
        });
        attempts.push(Attempt {
            sql: sql.clone(),
            error: Some(message.clone()),
        });
        final_error = Some(message.clone());
        if matches!(failure, Failure::Final(_)) {
            refused = true;
            break;
        }
        let schema = db.schema().ok();
        schema_fix = schema
            .and_then(|schema| fix_column_reference(&message, &sql, schema))
            .filter(|fixed| !attempts.iter().any(|a| same_sql(&a.sql, fixed)));
        let hints = schema
            .map(|schema| repair_hints(&message, &sql, schema))
            .unwrap_or_default();
        messages.push(sql_reply(&sql));
        messages.push(repair_message(&message, &hints));
    }

    if success.is_none() && !refused && config.fallback_candidates > 0 {
        let attempt = u32::try_from(attempts.len()).unwrap_or(u32::MAX) + 1;
        on_event(PipelineEvent::Stage(Stage::Generating(attempt)));
        let sampling = Instant::now();
        let sampler = Sampler {
            db,
            question,
            config,
            grammar: grammar.as_deref(),
        };
        let fresh = fresh_candidates(model, &sampler, &messages[..question_turns_end], &attempts)?;
        timings.generate_ms += millis(sampling.elapsed());
        match fresh {
            Fresh::Ran(sql, result) => {
                on_event(PipelineEvent::SqlText {
                    attempt,
                    text: &sql,
                });
                attempts.push(Attempt {
                    sql: sql.clone(),
                    error: None,
                });
                success = Some((sql, result));
            }
            Fresh::NoneRan(last) => {
                let error = format!(
                    "none of {} queries written afresh ran{}",
                    config.fallback_candidates,
                    last.error
                        .as_deref()
                        .map(|e| format!(" (last: {e})"))
                        .unwrap_or_default()
                );
                on_event(PipelineEvent::AttemptFailed {
                    attempt,
                    sql: &last.sql,
                    error: &error,
                });
                attempts.push(Attempt {
                    sql: last.sql,
                    error: Some(error),
                });
            }
        }
    }

    let model_id = model.model_id();
    let Some((sql, result)) = success else {
        let last_sql = attempts
            .last()
            .map(|a| a.sql.clone())
            .filter(|s| !s.is_empty());
        timings.total_ms = millis(started.elapsed());
        let reason = final_error.unwrap_or_else(|| "no attempt was made".into());
        let attempts_made = attempts.len();
        return Ok(RunOutcome {
            question: question.to_string(),
            sql: last_sql,
            result: None,
            answer: None,
            attempts,
            tables_sent: prompt_context.tables_sent,
            tables_used: Vec::new(),
            context_mode: prompt_context.mode,
            timings,
            model: model_id,
            error: Some(unanswered_message(attempts_made, &reason)),
        });
    };
    on_event(PipelineEvent::Executed(&result));

    let mut answer = None;
    if config.answer {
        on_event(PipelineEvent::Stage(Stage::Answering));
        let answered = Instant::now();
        messages.truncate(question_turns_end);
        messages.push(sql_reply(&sql));
        messages.push(answer_message(question, &result, config.answer_rows));
        let request = CompletionRequest {
            messages,
            assistant_prefix: String::new(),
            max_tokens: config.max_answer_tokens,
            stop: Vec::new(),
            sampling: Sampling::Greedy,
            grammar: None,
        };
        let completion = model.complete(&request, &mut |text| {
            on_event(PipelineEvent::AnswerText(text))
        })?;
        timings.answer_ms = millis(answered.elapsed());
        answer = Some(completion.text.trim().to_string());
    }
    timings.total_ms = millis(started.elapsed());
    Ok(RunOutcome {
        question: question.to_string(),
        tables_used: referenced_tables(&sql),
        sql: Some(sql),
        result: Some(result),
        answer,
        attempts,
        tables_sent: prompt_context.tables_sent,
        context_mode: prompt_context.mode,
        timings,
        model: model_id,
        error: None,
    })
}

/// Samples `config.candidates - 1` more queries after the greedy one, runs them all and
/// returns the one whose result most candidates share (the greedy one when none agree).
fn vote_among_candidates(
    model: &mut dyn LanguageModel,
    sampler: &Sampler<'_>,
    messages: &[crate::core::llm_api::ChatMessage],
    greedy_sql: String,
    on_event: &mut dyn FnMut(PipelineEvent<'_>),
) -> Result<String, PipelineError> {
    let Sampler { db, config, .. } = *sampler;
    let mut candidates = vec![greedy_sql];
    for k in 1..config.candidates {
        on_event(PipelineEvent::SqlRestarted { attempt: 1 });
        candidates.push(sampler.sample_query(model, messages, 7919 * k)?);
    }
    let results: Vec<Option<QueryResult>> = candidates
        .iter()
        .map(|sql| match check_read_only(sql) {
            Ok(_) => db.execute(sql, config.limits).ok(),
            Err(_) => None,
        })
        .collect();
    let refs: Vec<Option<&QueryResult>> = results.iter().map(Option::as_ref).collect();
    let winner = pick_by_vote(&refs).unwrap_or(0);
    let chosen = candidates.swap_remove(winner);
    if winner != 0 {
        on_event(PipelineEvent::SqlRestarted { attempt: 1 });
        on_event(PipelineEvent::SqlText {
            attempt: 1,
            text: &chosen,
        });
    }
    Ok(chosen)
}

/// When every repair failed: samples `config.fallback_candidates` queries afresh from the
/// question alone (a long repair conversation is where a small model stays stuck), runs
/// them and returns the query and result that most of those that ran agree on.
fn fresh_candidates(
    model: &mut dyn LanguageModel,
    sampler: &Sampler<'_>,
    question_turns: &[crate::core::llm_api::ChatMessage],
    failed: &[Attempt],
) -> Result<Fresh, PipelineError> {
    let Sampler { db, config, .. } = *sampler;
    let mut ran: Vec<(String, QueryResult)> = Vec::new();
    let mut last = Attempt {
        sql: String::new(),
        error: None,
    };
    for k in 1..=config.fallback_candidates {
        let sql = sampler.sample_query(model, question_turns, 104_729 * k)?;
        if failed.iter().any(|a| same_sql(&a.sql, &sql)) {
            continue;
        }
        if let Err(refused) = check_read_only(&sql) {
            last = Attempt {
                sql,
                error: Some(refused.to_string()),
            };
            continue;
        }
        match db.execute(&sql, config.limits) {
            Ok(result) => ran.push((sql, result)),
            Err(ExecError::Cancelled) => return Err(PipelineError::Cancelled),
            Err(error) => {
                last = Attempt {
                    sql,
                    error: Some(error.to_string()),
                }
            }
        }
    }
    let results: Vec<Option<&QueryResult>> = ran.iter().map(|(_, result)| Some(result)).collect();
    Ok(match pick_by_vote(&results) {
        Some(winner) => {
            let (sql, result) = ran.swap_remove(winner);
            Fresh::Ran(sql, result)
        }
        None => Fresh::NoneRan(last),
    })
}

/// What sampling extra queries for one question needs: where they run, what they answer
/// (the rewrites read the question) and how they are generated.
#[derive(Clone, Copy)]
struct Sampler<'a> {
    db: &'a ReadOnlyDb,
    question: &'a str,
    config: &'a PipelineConfig,
    grammar: Option<&'a str>,
}

impl Sampler<'_> {
    /// One query sampled at `config.candidate_temperature` with `seed`, not streamed,
    /// tidied like a generated one.
    fn sample_query(
        &self,
        model: &mut dyn LanguageModel,
        messages: &[crate::core::llm_api::ChatMessage],
        seed: u32,
    ) -> Result<String, PipelineError> {
        let Sampler {
            db,
            question,
            config,
            grammar,
        } = *self;
        let request = CompletionRequest {
            messages: messages.to_vec(),
            assistant_prefix: format!("{SQL_FENCE_OPEN}{}", config.sql_opening),
            max_tokens: config.max_sql_tokens,
            stop: vec![SQL_FENCE_CLOSE.to_string()],
            sampling: Sampling::Temperature {
                temperature: config.candidate_temperature,
                seed,
            },
            grammar: grammar.map(str::to_string),
        };
        let completion = model.complete(&request, &mut |_| {})?;
        let written = format!("{}{}", config.sql_opening, completion.text);
        Ok(tidy_generated_sql(&written, question, db, config).sql)
    }
}

enum Fresh {
    Ran(String, QueryResult),
    /// The last candidate that failed (empty when every one repeated an earlier failure).
    NoneRan(Attempt),
}

struct GeneratedSql {
    sql: String,
    /// A rewrite changed the query, so it differs from the text that was streamed.
    rewritten: bool,
}

/// The query in the model's reply, bare names quoted, with the enabled `core::simplify`
/// rewrites and `core::ground` checks applied.
fn tidy_generated_sql(
    written: &str,
    question: &str,
    db: &ReadOnlyDb,
    config: &PipelineConfig,
) -> GeneratedSql {
    rewrite_sql(
        extract_sql(written).unwrap_or_default(),
        question,
        db,
        config,
    )
}

/// `sql` with bare names quoted and the enabled rewrites applied.
fn rewrite_sql(
    sql: String,
    question: &str,
    db: &ReadOnlyDb,
    config: &PipelineConfig,
) -> GeneratedSql {
    let Ok(schema) = db.schema() else {
        return GeneratedSql {
            sql,
            rewritten: false,
        };
    };
    let conn = db.connection();
    type Rewrite<'r> = &'r dyn Fn(&str) -> Option<String>;
    // In order: a dropped flag may be all the query read of its table, so it goes before
    // the join drop; a filter grounding moves can leave its table unused.
    let steps: [(bool, Rewrite<'_>); 7] = [
        (config.drop_unnamed_flags, &|sql| {
            drop_unnamed_flag_filters(sql, question, schema, conn)
        }),
        (config.drop_unused_joins, &|sql| {
            drop_unused_joins(sql, schema)
        }),
        (config.intersect_both_values, &intersect_both_values),
        (config.ground_literals, &|sql| {
            let grounded = ground_literals(sql, schema, conn, config.lookup_through_keys)?;
            Some(if config.drop_unused_joins {
                drop_unused_joins(&grounded, schema).unwrap_or(grounded)
            } else {
                grounded
            })
        }),
        (config.filter_named_flags, &|sql| {
            filter_named_flags(sql, question, schema, conn)
        }),
        (config.group_by_entity_key, &|sql| {
            group_by_entity_key(sql, schema, conn)
        }),
        (config.show_group_columns, &show_group_columns),
    ];
    let mut sql = quote_bare_names(&sql, schema);
    let mut rewritten = false;
    for (enabled, rewrite) in steps {
        if enabled && let Some(changed) = rewrite(&sql) {
            sql = changed;
            rewritten = true;
        }
    }
    GeneratedSql { sql, rewritten }
}

enum Failure {
    Repairable(String),
    Final(String),
}

impl Failure {
    fn message(&self) -> &str {
        match self {
            Failure::Repairable(m) | Failure::Final(m) => m,
        }
    }
}

/// How many times a repair that repeats an earlier failed query is sampled again.
const MAX_RESAMPLES: u32 = 2;

fn same_sql(a: &str, b: &str) -> bool {
    let normalize = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    normalize(a) == normalize(b)
}

fn unlinked_join_message(condition: &str) -> String {
    format!(
        "the join condition {condition} does not connect two tables, so every row is paired \
         with every row of the joined table; join on the columns that match between the two \
         tables, or leave out a table the question does not need"
    )
}

fn unanswered_message(attempts: usize, reason: &str) -> String {
    let plural = if attempts == 1 { "" } else { "s" };
    format!("could not answer after {attempts} attempt{plural}: {reason}")
}

fn millis(duration: Duration) -> u64 {
    u64::try_from(duration.as_millis()).unwrap_or(u64::MAX)
}
