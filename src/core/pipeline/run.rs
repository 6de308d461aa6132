//! One question's state between the steps: the conversation with the model, the attempts
//! so far, the timings and which rewrites fired; the attempt-and-repair loop.

use std::time::Instant;

use crate::core::db::exec::{ExecError, QueryResult, ReadOnlyDb};
use crate::core::db::guard::{GuardError, referenced_tables};
use crate::core::model::{ChatMessage, LanguageModel};
use crate::core::pipeline::bridge_join::route_through_bridge;
use crate::core::pipeline::follow_up::EarlierTurn;
use crate::core::pipeline::grammar::sql_grammar;
use crate::core::pipeline::invented_join::{drop_invented_join, replace_invented_table};
use crate::core::pipeline::missing_join::{
    cover_with_linked_pair, join_owning_table, join_owning_table_in_subquery,
};
use crate::core::pipeline::outcome::{
    Attempt, Confidence, PipelineEvent, PromptRecord, RunOutcome, Source, Stage, Timings,
};
use crate::core::pipeline::prompt::{
    question_turns, repair_message, sql_reply, system_message_for,
};
use crate::core::pipeline::referenced_key::name_referenced_key;
use crate::core::pipeline::repair::repeats_failure;
use crate::core::pipeline::repair::{fix_column_reference, qualify_ambiguous_column, repair_hints};
use crate::core::pipeline::{PipelineConfig, PipelineError, millis};
use crate::core::retrieval::provider::PromptContext;
use crate::core::rewrite::closest_values::{
    looks_empty, selects_only_constants, unheld_message, unheld_values,
};
use crate::core::rewrite::{RewriteChain, RewriteInput, Rewritten};

/// How the attempts ended.
pub(super) enum Ending {
    Answered {
        sql: String,
        result: QueryResult,
        source: Source,
    },
    /// `refused`: the guard refused the query outright, so no fallback is tried.
    Unanswered { reason: String, refused: bool },
}

/// What an answered run ends with.
pub(super) struct Answered {
    pub(super) sql: String,
    pub(super) result: QueryResult,
    /// The sentence, when one was asked for.
    pub(super) text: Option<String>,
    pub(super) source: Source,
    pub(super) confidence: Confidence,
}

/// Why one attempt did not produce a result.
enum Failure {
    /// The model may fix it: the error goes back to it.
    Repairable(String),
    /// Nothing to repair (the query would write, or the database failed).
    Final(String),
}

pub(super) struct Run<'a> {
    pub(super) db: &'a ReadOnlyDb,
    pub(super) question: &'a str,
    pub(super) config: &'a PipelineConfig,
    pub(super) chain: RewriteChain,
    pub(super) grammar: Option<String>,
    /// The grammar of queries written again after a failure (`None`: unconstrained).
    pub(super) retry_grammar: Option<String>,
    prompt: PromptContext,
    /// System message, examples and the question, then a reply and a repair request per
    /// failed attempt.
    pub(super) messages: Vec<ChatMessage>,
    /// Where the question turns end (a fresh start and the answer go back to here).
    pub(super) question_turns_end: usize,
    pub(super) attempts: Vec<Attempt>,
    pub(super) timings: Timings,
    /// Rewrites and checks that fired on any attempt, in order, each once.
    fired: Vec<&'static str>,
    /// What the failed attempts taught (each error and its hints, once each), for a
    /// repair that starts again from the question instead of from the failed query.
    pub(super) lessons: Vec<String>,
    /// Mean token log-probability of the latest query the model streamed (`None` for a
    /// query the schema fixed or a vote picked among samples).
    pub(super) sql_logprob: Option<f32>,
    /// A query that found nothing while filtering on a text no row holds, kept while the
    /// model is shown the closest values: the answer when it writes the query again.
    pub(super) held_empty: Option<(String, QueryResult, u32)>,
    /// When the first query failed: the repair budget counts from here.
    repairs_started: Option<Instant>,
}

impl<'a> Run<'a> {
    pub(super) fn new(
        db: &'a ReadOnlyDb,
        question: &'a str,
        config: &'a PipelineConfig,
        prompt: PromptContext,
        earlier: &[EarlierTurn],
    ) -> Self {
        let mut messages = vec![system_message_for(&prompt.schema_text, db.dialect())];
        messages.extend(question_turns(
            question,
            &prompt.examples,
            earlier,
            &prompt.glossary,
        ));
        let retry_grammar = if config.grammar || config.retry_grammar {
            db.schema().ok().map(sql_grammar)
        } else {
            None
        };
        let grammar = retry_grammar.clone().filter(|_| config.grammar);
        Self {
            db,
            question,
            config,
            chain: RewriteChain::from_settings(&config.rewrites),
            grammar,
            retry_grammar,
            question_turns_end: messages.len(),
            messages,
            prompt,
            attempts: Vec::new(),
            timings: Timings::default(),
            fired: Vec::new(),
            lessons: Vec::new(),
            sql_logprob: None,
            held_empty: None,
            repairs_started: None,
        }
    }

    /// The first attempt and up to `max_repairs` repairs, each fed the previous error.
    pub(super) fn attempt_and_repair(
        &mut self,
        model: &mut dyn LanguageModel,
        on_event: &mut dyn FnMut(PipelineEvent<'_>),
    ) -> Result<Ending, PipelineError> {
        let mut schema_fix: Option<(&'static str, String)> = None;
        let mut last_error = None;
        for attempt in 1..=self.config.max_repairs + 1 {
            let stage = if attempt == 1 {
                Stage::Generating(1)
            } else {
                Stage::Repairing(attempt)
            };
            on_event(PipelineEvent::Stage(stage));
            let fixed_by_schema = schema_fix.is_some();
            let sql = match schema_fix.take() {
                // The schema settled the error without the model (see `fix_column_reference`).
                Some((fix, fixed)) => {
                    let fixed = self.rewrite(fixed);
                    self.sql_logprob = None;
                    self.note_fired(&[fix]);
                    self.note_fired(&fixed.fired);
                    on_event(PipelineEvent::SqlText {
                        attempt,
                        text: &fixed.sql,
                    });
                    fixed.sql
                }
                None if self.out_of_repair_time() => break,
                None => self.generate(model, attempt, on_event)?,
            };
            if let Some(kept) = self.keep_held_for_constants(&sql) {
                return Ok(kept);
            }
            let failure = match self.check_and_execute(&sql, attempt, on_event)? {
                Ok(result) => match self.unheld_value_check(&sql, &result, attempt) {
                    Some(message) => {
                        self.held_empty = Some((sql.clone(), result, attempt));
                        Failure::Repairable(message)
                    }
                    None => {
                        self.attempts.push(Attempt {
                            sql: sql.clone(),
                            error: None,
                        });
                        return Ok(Ending::Answered {
                            sql,
                            result,
                            source: source_of(attempt),
                        });
                    }
                },
                Err(failure) => failure,
            };
            let (Failure::Repairable(message) | Failure::Final(message)) = &failure;
            on_event(PipelineEvent::AttemptFailed {
                attempt,
                sql: &sql,
                error: message,
            });
            self.attempts.push(Attempt {
                sql: sql.clone(),
                error: Some(message.clone()),
            });
            if let Failure::Final(reason) = failure {
                if let Some(held) = self.answer_held() {
                    return Ok(held);
                }
                return Ok(Ending::Unanswered {
                    reason,
                    refused: true,
                });
            }
            last_error = Some(message.clone());
            self.repairs_started.get_or_insert_with(Instant::now);
            // A query the schema fixed still names what the error was about (a joined
            // table's column, now read through the join) but is never the same mistake.
            let stuck = !fixed_by_schema && self.stuck_on(&sql);
            schema_fix = self.ask_for_repair(&sql, message);
            // Re-sampled and still the same mistake: on the training split no later repair
            // turn recovered such a query, so the fallback starts sooner; unless the schema
            // settles the mistake in this wording of it, which costs no model turn.
            if stuck && schema_fix.is_none() {
                self.note_fired(&["stop_repeated_repairs"]);
                break;
            }
        }
        if let Some(held) = self.answer_held() {
            return Ok(held);
        }
        let reason = last_error.unwrap_or_else(|| "no attempt was made".into());
        Ok(Ending::Unanswered {
            reason,
            refused: false,
        })
    }

    /// "SELECT 0 ..." after being shown the closest values means nothing should match: the
    /// held query that found nothing is the answer.
    fn keep_held_for_constants(&mut self, sql: &str) -> Option<Ending> {
        if self.held_empty.is_none() || !selects_only_constants(sql) {
            return None;
        }
        self.note_fired(&["keep_empty_result"]);
        self.attempts.push(Attempt {
            sql: sql.to_string(),
            error: Some(
                "selects only constants: the earlier query that found nothing is the answer".into(),
            ),
        });
        self.answer_held()
    }

    /// The query that found nothing, held while the model was shown the closest values,
    /// as the answer.
    fn answer_held(&mut self) -> Option<Ending> {
        let (sql, result, attempt) = self.held_empty.take()?;
        Some(Ending::Answered {
            sql,
            result,
            source: source_of(attempt),
        })
    }

    /// Whether the repairs have spent `repair_budget`; the first time it says so, the
    /// budget is reported with the rewrites and checks that fired.
    pub(super) fn out_of_repair_time(&mut self) -> bool {
        let spent = self.repair_time_spent();
        if spent {
            self.note_fired(&["repair_time_budget"]);
        }
        spent
    }

    /// Whether the repairs have spent `repair_budget`, without reporting it.
    pub(super) fn repair_time_spent(&self) -> bool {
        match (self.repairs_started, self.config.repair_budget) {
            (Some(started), Some(budget)) => started.elapsed() >= budget,
            _ => false,
        }
    }

    /// Whether the query just recorded as failed makes an earlier attempt's mistake again
    /// (the same query, or the same missing table or column) after `generate` already
    /// asked afresh and re-sampled.
    fn stuck_on(&self, sql: &str) -> bool {
        let Some((_, earlier)) = self.attempts.split_last() else {
            return false;
        };
        earlier.iter().any(|a| {
            same_sql(&a.sql, sql)
                || a.error
                    .as_deref()
                    .is_some_and(|error| repeats_failure(error, sql))
        })
    }

    /// The guard, then the chain's checks, then the query itself.
    fn check_and_execute(
        &mut self,
        sql: &str,
        attempt: u32,
        on_event: &mut dyn FnMut(PipelineEvent<'_>),
    ) -> Result<Result<QueryResult, Failure>, PipelineError> {
        match self.db.check(sql) {
            Err(
                error @ (GuardError::Empty
                | GuardError::Syntax { .. }
                | GuardError::FileRead { .. }),
            ) => {
                return Ok(Err(Failure::Repairable(error.to_string())));
            }
            Err(refused) => return Ok(Err(Failure::Final(refused.to_string()))),
            Ok(_) => {}
        }
        if let Some((name, message)) = self.failed_check(sql) {
            self.note_fired(&[name]);
            return Ok(Err(Failure::Repairable(message)));
        }
        on_event(PipelineEvent::Stage(Stage::Executing(attempt)));
        let executed = Instant::now();
        let outcome = self.db.execute(sql, self.config.limits);
        self.timings.execute_ms += millis(executed.elapsed());
        match outcome {
            Ok(result) => Ok(Ok(result)),
            Err(ExecError::Cancelled) => Err(PipelineError::Cancelled),
            Err(error) if error.is_repairable() => Ok(Err(Failure::Repairable(error.to_string()))),
            Err(error) => Ok(Err(Failure::Final(error.to_string()))),
        }
    }

    /// Once per question, and only with a repair left: a query that found nothing
    /// because a text filter matches no row goes back with the column's closest values.
    /// A second query that finds nothing, or the same query again, is the answer.
    fn unheld_value_check(
        &mut self,
        sql: &str,
        result: &QueryResult,
        attempt: u32,
    ) -> Option<String> {
        if !self.config.rewrites.closest_values
            || self.held_empty.is_some()
            || attempt > self.config.max_repairs
            || self.attempts.iter().any(|a| same_sql(&a.sql, sql))
            || !looks_empty(result)
        {
            return None;
        }
        let schema = self.db.schema().ok()?;
        let unheld = unheld_values(sql, schema, self.db.connection()?);
        if unheld.is_empty() {
            return None;
        }
        self.note_fired(&["closest_values"]);
        Some(unheld_message(&unheld))
    }

    fn failed_check(&self, sql: &str) -> Option<(&'static str, String)> {
        self.chain.check(sql, &self.rewrite_input()?)
    }

    /// What the rewrites and checks read besides the query (`None` when the schema cannot
    /// be read: then the query goes on as written).
    fn rewrite_input(&self) -> Option<RewriteInput<'_>> {
        Some(RewriteInput {
            question: self.question,
            schema: self.db.schema().ok()?,
            conn: self.db.connection(),
            dialect: self.db.dialect(),
        })
    }

    /// Adds the failed query and the error (with hints from the schema) to the
    /// conversation; returns the query the schema alone can fix, when it can, with the
    /// name of the fix (reported with the rewrites that fired).
    fn ask_for_repair(&mut self, sql: &str, message: &str) -> Option<(&'static str, String)> {
        let schema = self.db.schema().ok();
        let fix = schema
            .and_then(|schema| {
                name_referenced_key(message, sql, schema)
                    .map(|fixed| ("name_referenced_key", fixed))
                    .or_else(|| {
                        fix_column_reference(message, sql, schema)
                            .map(|fixed| ("fix_column_reference", fixed))
                    })
                    .or_else(|| {
                        replace_invented_table(message, sql, schema)
                            .map(|fixed| ("replace_invented_table", fixed))
                    })
                    .or_else(|| {
                        drop_invented_join(message, sql, schema)
                            .map(|fixed| ("drop_invented_join", fixed))
                    })
                    .or_else(|| {
                        join_owning_table(message, sql, schema, self.question)
                            .or_else(|| {
                                join_owning_table_in_subquery(message, sql, schema, self.question)
                            })
                            .map(|fixed| ("join_owning_table", fixed))
                    })
                    .or_else(|| {
                        cover_with_linked_pair(message, sql, schema)
                            .map(|fixed| ("cover_with_linked_pair", fixed))
                    })
                    .or_else(|| {
                        route_through_bridge(message, sql, schema)
                            .map(|fixed| ("route_through_bridge", fixed))
                    })
                    .or_else(|| {
                        qualify_ambiguous_column(message, sql, schema)
                            .map(|fixed| ("qualify_ambiguous_column", fixed))
                    })
            })
            .filter(|(_, fixed)| !self.attempts.iter().any(|a| same_sql(&a.sql, fixed)));
        let hints = schema
            .map(|schema| repair_hints(message, sql, schema))
            .unwrap_or_default();
        for lesson in std::iter::once(format!("A query failed with: {}", message.trim()))
            .chain(hints.iter().cloned())
        {
            if !self.lessons.contains(&lesson) {
                self.lessons.push(lesson);
            }
        }
        self.messages.push(sql_reply(sql));
        self.messages
            .push(repair_message(message, &hints, self.db.dialect()));
        fix
    }

    /// `sql` after the enabled rewrites (unchanged when the schema cannot be read).
    pub(super) fn rewrite(&self, sql: String) -> Rewritten {
        match self.rewrite_input() {
            Some(input) => self.chain.apply(sql, &input),
            None => Rewritten {
                sql,
                fired: Vec::new(),
                changed: false,
            },
        }
    }

    /// Records rewrites or checks that fired on a query the run went on with.
    pub(super) fn note_fired(&mut self, names: &[&'static str]) {
        for name in names {
            if !self.fired.contains(name) {
                self.fired.push(name);
            }
        }
    }

    /// The outcome: answered, or the reason it was not.
    pub(super) fn into_outcome(
        self,
        model: String,
        answered: Result<Answered, String>,
    ) -> RunOutcome {
        let prompt = PromptRecord {
            schema_text: self.prompt.schema_text,
            examples: self.prompt.examples,
        };
        let mut outcome = RunOutcome {
            question: self.question.to_string(),
            sql: None,
            result: None,
            answer: None,
            attempts: self.attempts,
            tables_sent: self.prompt.tables_sent,
            tables_used: Vec::new(),
            context_mode: self.prompt.mode,
            timings: self.timings,
            model,
            error: None,
            rewrites: self.fired.iter().map(|name| name.to_string()).collect(),
            source: None,
            confidence: None,
            prompt: Some(Box::new(prompt)),
        };
        match answered {
            Ok(answered) => {
                outcome.tables_used = referenced_tables(&answered.sql);
                outcome.sql = Some(answered.sql);
                outcome.result = Some(answered.result);
                outcome.answer = answered.text;
                outcome.source = Some(answered.source);
                outcome.confidence = Some(answered.confidence);
            }
            Err(reason) => {
                let last_sql = outcome.attempts.last().map(|a| a.sql.clone());
                outcome.sql = last_sql.filter(|s| !s.is_empty());
                let mut message = unanswered_message(outcome.attempts.len(), &reason);
                if let Some(budget) = self.config.repair_budget
                    && self.fired.contains(&"repair_time_budget")
                {
                    message.push_str(&format!(
                        " (repairs stopped after {} s: [pipeline] repair_budget_secs)",
                        budget.as_secs()
                    ));
                }
                outcome.error = Some(message);
            }
        }
        outcome
    }
}

/// Where the query of `attempt` came from: the first attempt or a repair.
fn source_of(attempt: u32) -> Source {
    if attempt == 1 {
        Source::FirstAttempt
    } else {
        Source::Repaired { attempt }
    }
}

/// Two queries that differ only in spacing and case.
pub(super) fn same_sql(a: &str, b: &str) -> bool {
    let normalize = |s: &str| {
        s.split_whitespace()
            .collect::<Vec<_>>()
            .join(" ")
            .to_lowercase()
    };
    normalize(a) == normalize(b)
}

fn unanswered_message(attempts: usize, reason: &str) -> String {
    let plural = if attempts == 1 { "" } else { "s" };
    format!("could not answer after {attempts} attempt{plural}: {reason}")
}
