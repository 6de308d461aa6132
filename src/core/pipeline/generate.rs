//! Writing queries with the model: the streamed query of an attempt (asked again from the
//! question with what failed, then sampled, when it repeats a failed one or its mistake), extra candidates that vote, and the fallback that starts afresh
//! from the question when every repair failed.

use std::time::Instant;

use crate::core::db::exec::{ExecError, QueryResult};
use crate::core::model::{ChatMessage, CompletionRequest, LanguageModel, Sampling};
use crate::core::pipeline::extract::{SQL_FENCE_CLOSE, SQL_FENCE_OPEN, extract_sql};
use crate::core::pipeline::outcome::Source;
use crate::core::pipeline::outcome::{Attempt, PipelineEvent, Stage};
use crate::core::pipeline::repair::{names_unknown, repeats_failure};
use crate::core::pipeline::run::{Ending, Run, same_sql};
use crate::core::pipeline::vote::{pick_by_vote, tally_vote};
use crate::core::pipeline::{PipelineError, millis};
use crate::core::rewrite::Rewritten;

/// How many times a repair that repeats an earlier failed query is sampled again.
const MAX_RESAMPLES: u32 = 2;

impl Run<'_> {
    /// The query of `attempt`, streamed as it is written, rewritten, and (for the first
    /// attempt with `candidates > 1`) chosen by vote among sampled candidates.
    pub(super) fn generate(
        &mut self,
        model: &mut dyn LanguageModel,
        attempt: u32,
        on_event: &mut dyn FnMut(PipelineEvent<'_>),
    ) -> Result<String, PipelineError> {
        let opening = self.config.sql_opening.as_str();
        let mut sampling = self.config.sampling;
        let mut messages = self.messages.clone();
        let mut resamples = 0;
        let mut grammar = self.grammar.clone();
        if attempt > 1 && self.last_failure_names_unknown() && !self.lessons.is_empty() {
            // After a table or column the schema does not hold (and that no schema fix
            // could replace), the repair turn mostly writes the failed query again: ask
            // from the question with what failed, under the schema's names, at once.
            messages = self.question_with_lessons();
            grammar = self.retry_grammar.clone();
            resamples = 1;
            self.note_fired(&["ask_afresh_after_unknown_name"]);
            if grammar.is_some() {
                self.note_fired(&["retry_grammar"]);
            }
        }
        let (completion, written) = loop {
            let request = self.sql_request(messages.clone(), sampling, grammar.clone());
            if !opening.is_empty() {
                on_event(PipelineEvent::SqlText {
                    attempt,
                    text: opening,
                });
            }
            // The opening ends in a space and the model's first token usually starts with
            // one ("SELECT" + " Name"): without this the query read "SELECT  Name".
            let mut leading = !opening.is_empty();
            let completion = model.complete(&request, &mut |text| {
                let text = if leading { after_opening(text) } else { text };
                leading &= text.is_empty();
                if !text.is_empty() {
                    on_event(PipelineEvent::SqlText { attempt, text });
                }
            })?;
            let written = self.tidy(&join_opening(opening, &completion.text));
            if written.changed {
                on_event(PipelineEvent::SqlRestarted { attempt });
                on_event(PipelineEvent::SqlText {
                    attempt,
                    text: &written.sql,
                });
            }
            // Greedy decoding answers a repair turn with the query it already wrote more
            // often than not. The first retry asks again from the question alone, with what
            // the failures taught and without the failed query to copy; later ones sample.
            // Writing again the query that found nothing is the model's answer to the
            // closest values it was shown, not a repeated failure.
            let keeps_empty = self
                .held_empty
                .as_ref()
                .is_some_and(|(held, _, _)| same_sql(held, &written.sql));
            let repeated = !keeps_empty
                && self.attempts.iter().any(|a| {
                    same_sql(&a.sql, &written.sql)
                        || a.error
                            .as_deref()
                            .is_some_and(|error| repeats_failure(error, &written.sql))
                });
            tracing::debug!(attempt, resamples, repeated, sql = %written.sql, "query written");
            if !repeated || resamples >= MAX_RESAMPLES || self.out_of_repair_time() {
                break (completion, written);
            }
            resamples += 1;
            // Names the schema does not hold are what small models repeat most.
            grammar = self.retry_grammar.clone();
            if grammar.is_some() {
                self.note_fired(&["retry_grammar"]);
            }
            if resamples == 1 && !self.lessons.is_empty() {
                messages = self.question_with_lessons();
            } else {
                sampling = Sampling::Temperature {
                    temperature: self.config.candidate_temperature,
                    seed: attempt * 31 + resamples,
                };
            }
            on_event(PipelineEvent::SqlRestarted { attempt });
        };
        self.sql_logprob = completion.mean_logprob;
        if attempt == 1 {
            self.timings.prompt_tokens = completion.prompt_tokens;
            self.timings.cached_prompt_tokens = completion.cached_prompt_tokens;
            self.timings.ttft_ms = millis(completion.time_to_first_token);
        }
        self.timings.generate_ms += millis(completion.elapsed);
        if attempt == 1 && self.config.candidates > 1 {
            let voting = Instant::now();
            let chosen = self.vote_among_candidates(model, written, on_event)?;
            self.timings.generate_ms += millis(voting.elapsed());
            self.note_fired(&chosen.fired);
            Ok(chosen.sql)
        } else {
            self.note_fired(&written.fired);
            Ok(written.sql)
        }
    }

    /// Whether the latest failed query named a table or column the database does not have.
    fn last_failure_names_unknown(&self) -> bool {
        self.attempts
            .last()
            .and_then(|a| a.error.as_deref())
            .is_some_and(names_unknown)
    }

    /// The question turns, the question followed by what earlier attempts taught.
    fn question_with_lessons(&self) -> Vec<ChatMessage> {
        let mut messages = self.messages[..self.question_turns_end].to_vec();
        if let Some(question) = messages.last_mut() {
            question
                .content
                .push_str("\n\nEarlier queries for this question failed:");
            for lesson in &self.lessons {
                question.content.push_str("\n- ");
                question.content.push_str(lesson);
            }
        }
        messages
    }

    /// Samples `candidates - 1` more queries after the greedy one, runs them all and
    /// returns the one whose result most candidates share (the greedy one when none agree).
    fn vote_among_candidates(
        &mut self,
        model: &mut dyn LanguageModel,
        greedy: Rewritten,
        on_event: &mut dyn FnMut(PipelineEvent<'_>),
    ) -> Result<Rewritten, PipelineError> {
        let mut candidates = vec![greedy];
        for k in 1..self.config.candidates {
            on_event(PipelineEvent::SqlRestarted { attempt: 1 });
            let grammar = self.grammar.clone();
            candidates.push(self.sample_query(model, &self.messages, 7919 * k, grammar)?);
        }
        let results: Vec<Option<QueryResult>> = candidates
            .iter()
            .map(|candidate| match self.db.check(&candidate.sql) {
                Ok(_) => self.db.execute(&candidate.sql, self.config.limits).ok(),
                Err(_) => None,
            })
            .collect();
        let refs: Vec<Option<&QueryResult>> = results.iter().map(Option::as_ref).collect();
        let winner = pick_by_vote(&refs).unwrap_or(0);
        let chosen = candidates.swap_remove(winner);
        if winner != 0 {
            // Only the streamed greedy query's log-probability is known.
            self.sql_logprob = None;
            on_event(PipelineEvent::SqlRestarted { attempt: 1 });
            on_event(PipelineEvent::SqlText {
                attempt: 1,
                text: &chosen.sql,
            });
        }
        Ok(chosen)
    }

    /// When every repair failed: samples `fallback_candidates` queries afresh from the
    /// question alone (a long repair conversation is where a small model stays stuck),
    /// runs them and answers with the result most of those that ran agree on. Otherwise
    /// the run stays unanswered for the reason it had.
    pub(super) fn fall_back(
        &mut self,
        model: &mut dyn LanguageModel,
        on_event: &mut dyn FnMut(PipelineEvent<'_>),
        unanswered: Ending,
    ) -> Result<Ending, PipelineError> {
        let attempt = u32::try_from(self.attempts.len()).unwrap_or(u32::MAX) + 1;
        on_event(PipelineEvent::Stage(Stage::Generating(attempt)));
        if self.retry_grammar.is_some() {
            self.note_fired(&["retry_grammar"]);
        }
        let sampling = Instant::now();
        let (fresh, sampled) = self.fresh_candidates(model)?;
        self.timings.generate_ms += millis(sampling.elapsed());
        // Reported when the budget cut the samples short.
        self.out_of_repair_time();
        match fresh {
            Ok((chosen, result, agreed)) => {
                on_event(PipelineEvent::SqlText {
                    attempt,
                    text: &chosen.sql,
                });
                self.note_fired(&chosen.fired);
                self.attempts.push(Attempt {
                    sql: chosen.sql.clone(),
                    error: None,
                });
                self.sql_logprob = None;
                Ok(Ending::Answered {
                    sql: chosen.sql,
                    result,
                    source: Source::FallbackVote {
                        agreed: u32::try_from(agreed).unwrap_or(u32::MAX),
                        samples: sampled,
                    },
                })
            }
            Err(last) => {
                let last_error = last.error.as_deref();
                let error = format!(
                    "none of {} queries written afresh ran{}",
                    sampled,
                    last_error
                        .map(|e| format!(" (last: {e})"))
                        .unwrap_or_default()
                );
                on_event(PipelineEvent::AttemptFailed {
                    attempt,
                    sql: &last.sql,
                    error: &error,
                });
                self.attempts.push(Attempt {
                    sql: last.sql,
                    error: Some(error),
                });
                Ok(unanswered)
            }
        }
    }

    /// The fallback's candidates: the winner, its result and how many returned it, or the
    /// last one that failed (empty when every one repeated an earlier failure); and how
    /// many were sampled.
    fn fresh_candidates(
        &self,
        model: &mut dyn LanguageModel,
    ) -> Result<(FreshOutcome, u32), PipelineError> {
        let question_turns = &self.messages[..self.question_turns_end];
        let mut ran: Vec<(Rewritten, QueryResult)> = Vec::new();
        let mut last = Attempt {
            sql: String::new(),
            error: None,
        };
        let mut sampled = 0;
        for k in 1..=self.config.fallback_candidates {
            // The budget bounds the fallback too: once it is spent, the vote is among the
            // queries sampled so far (the first is always sampled).
            if k > 1 && self.repair_time_spent() {
                break;
            }
            let grammar = self.retry_grammar.clone();
            let candidate = self.sample_query(model, question_turns, 104_729 * k, grammar)?;
            sampled = k;
            if self
                .attempts
                .iter()
                .any(|a| same_sql(&a.sql, &candidate.sql))
            {
                continue;
            }
            if let Err(refused) = self.db.check(&candidate.sql) {
                last = Attempt {
                    sql: candidate.sql,
                    error: Some(refused.to_string()),
                };
                continue;
            }
            match self.db.execute(&candidate.sql, self.config.limits) {
                Ok(result) => ran.push((candidate, result)),
                Err(ExecError::Cancelled) => return Err(PipelineError::Cancelled),
                Err(error) => {
                    last = Attempt {
                        sql: candidate.sql,
                        error: Some(error.to_string()),
                    }
                }
            }
        }
        let results: Vec<Option<&QueryResult>> = ran.iter().map(|(_, r)| Some(r)).collect();
        let outcome = match tally_vote(&results) {
            Some((winner, agreed)) => {
                let (chosen, result) = ran.swap_remove(winner);
                Ok((chosen, result, agreed))
            }
            None => Err(last),
        };
        Ok((outcome, sampled))
    }

    /// One query sampled at `candidate_temperature` with `seed` (under `grammar`, if any),
    /// not streamed, tidied like a generated one.
    fn sample_query(
        &self,
        model: &mut dyn LanguageModel,
        messages: &[ChatMessage],
        seed: u32,
        grammar: Option<String>,
    ) -> Result<Rewritten, PipelineError> {
        let sampling = Sampling::Temperature {
            temperature: self.config.candidate_temperature,
            seed,
        };
        let request = self.sql_request(messages.to_vec(), sampling, grammar);
        let completion = model.complete(&request, &mut |_| {})?;
        Ok(self.tidy(&join_opening(&self.config.sql_opening, &completion.text)))
    }

    fn sql_request(
        &self,
        messages: Vec<ChatMessage>,
        sampling: Sampling,
        grammar: Option<String>,
    ) -> CompletionRequest {
        CompletionRequest {
            messages,
            assistant_prefix: format!("{SQL_FENCE_OPEN}{}", self.config.sql_opening),
            max_tokens: self.config.max_sql_tokens,
            stop: vec![SQL_FENCE_CLOSE.to_string()],
            sampling,
            grammar,
        }
    }

    /// The query in the model's reply, after the rewrite chain.
    fn tidy(&self, written: &str) -> Rewritten {
        self.rewrite(extract_sql(written).unwrap_or_default())
    }
}

/// The fallback's winner, its result and how many samples returned it; or the last
/// sample that failed.
type FreshOutcome = Result<(Rewritten, QueryResult, usize), Attempt>;

/// The start of a completion after an opening that ends in a space: its leading spaces go.
fn after_opening(text: &str) -> &str {
    text.trim_start_matches([' ', '\t'])
}

/// The opening the reply was forced to start with, then the reply, one space between.
pub(super) fn join_opening(opening: &str, completion: &str) -> String {
    if opening.ends_with(char::is_whitespace) {
        format!("{opening}{}", after_opening(completion))
    } else {
        format!("{opening}{completion}")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_opening_and_the_reply_meet_with_one_space() {
        assert_eq!(
            join_opening("SELECT ", " Name FROM t"),
            "SELECT Name FROM t"
        );
        assert_eq!(join_opening("SELECT ", "Name FROM t"), "SELECT Name FROM t");
        assert_eq!(join_opening("", "  SELECT 1"), "  SELECT 1");
        assert_eq!(join_opening("SELECT", " 1"), "SELECT 1");
    }
}
