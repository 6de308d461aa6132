//! What one run produces and reports on the way: stages, events, attempts, timings and
//! the final outcome, shared by every front end and the history store.

use serde::{Deserialize, Serialize};

use crate::core::db::exec::QueryResult;
use crate::core::retrieval::provider::{ContextMode, Example, PromptContext};

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
    /// The rewrites and checks (`core::rewrite`) that fired on the run's queries, in order.
    #[serde(default)]
    pub rewrites: Vec<String>,
    /// Which step produced the shown query (`None` when none did).
    #[serde(default)]
    pub source: Option<Source>,
    /// How far the answer can be trusted, and why.
    #[serde(default)]
    pub confidence: Option<Confidence>,
    /// What the prompt held beyond the question; recorded with the run (not part of the
    /// JSON) so the retraining set can reproduce the prompt exactly.
    #[serde(skip)]
    pub prompt: Option<Box<PromptRecord>>,
}

/// What the prompt held for a run beyond the question.
#[derive(Debug, Clone, Default, PartialEq)]
pub struct PromptRecord {
    pub schema_text: String,
    pub examples: Vec<Example>,
}

impl RunOutcome {
    pub fn succeeded(&self) -> bool {
        self.error.is_none() && self.result.is_some()
    }

    /// A question refused before anything was generated, for `reason`.
    pub fn refused(question: &str, model: String, reason: String) -> Self {
        Self {
            question: question.to_string(),
            sql: None,
            result: None,
            answer: None,
            attempts: Vec::new(),
            tables_sent: Vec::new(),
            tables_used: Vec::new(),
            context_mode: ContextMode::WholeSchema,
            timings: Timings::default(),
            model,
            error: Some(reason),
            rewrites: Vec::new(),
            source: None,
            confidence: None,
            prompt: None,
        }
    }
}

/// Which step produced the query whose result is shown.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Source {
    /// The first query written ran.
    FirstAttempt,
    /// A repair ran (`attempt` counts from 1, the first attempt).
    Repaired { attempt: u32 },
    /// Every repair failed; `agreed` of `samples` queries written afresh returned this result.
    FallbackVote { agreed: u32, samples: u32 },
}

/// A label, not a calibrated probability: `high` (first attempt, rows as asked), `medium`
/// (repaired, rows capped, an unsure model, or a sentence replaced by the plain
/// statement) or `low` (a fallback guess, an empty result, or two reasons for doubt).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum ConfidenceLevel {
    Low,
    Medium,
    High,
}

impl ConfidenceLevel {
    pub fn label(self) -> &'static str {
        match self {
            Self::Low => "low",
            Self::Medium => "medium",
            Self::High => "high",
        }
    }

    fn lowered(self) -> Self {
        match self {
            Self::High => Self::Medium,
            Self::Medium | Self::Low => Self::Low,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Confidence {
    pub level: ConfidenceLevel,
    /// Why the level is below `high`, one short phrase each.
    pub reasons: Vec<String>,
    /// Mean log-probability of the shown query's tokens, when the engine reports it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub sql_logprob: Option<f32>,
}

/// Mean token log-probability below which the model is taken to be unsure of its query
/// (about a 1-in-2 chance per token on average).
pub const UNSURE_LOGPROB: f32 = -0.7;

impl Confidence {
    /// The level `source` and `result` earn; `answer_replaced` when the model's sentence
    /// stated what the rows do not hold.
    pub fn assess(
        source: Source,
        result: &QueryResult,
        sql_logprob: Option<f32>,
        answer_replaced: bool,
    ) -> Self {
        let mut level = ConfidenceLevel::High;
        let mut reasons = Vec::new();
        match source {
            Source::FirstAttempt => {}
            Source::Repaired { attempt } => {
                level = level.lowered();
                reasons.push(format!("answered by repair attempt {attempt}"));
            }
            Source::FallbackVote { agreed, samples } => {
                level = ConfidenceLevel::Low;
                reasons.push(format!(
                    "a guess: every repair failed and {agreed} of {samples} fresh queries agreed"
                ));
            }
        }
        let mut doubt = |reason: String, level: &mut ConfidenceLevel| {
            *level = level.lowered();
            reasons.push(reason);
        };
        if result.rows.is_empty() {
            doubt("the result is empty".into(), &mut level);
        } else if result.truncated() {
            doubt(
                format!("rows capped ({})", result.row_summary()),
                &mut level,
            );
        }
        if let Some(logprob) = sql_logprob.filter(|l| *l < UNSURE_LOGPROB) {
            doubt(
                format!(
                    "the model was unsure of the query (mean token log-probability {logprob:.2})"
                ),
                &mut level,
            );
        }
        if answer_replaced {
            doubt(
                "the model's sentence stated values the rows do not hold; the result is stated plainly"
                    .into(),
                &mut level,
            );
        }
        Self {
            level,
            reasons,
            sql_logprob,
        }
    }
}

impl Source {
    /// The words put before a fallback answer: "Guess (2 of 5 samples agreed): ".
    pub fn guess_prefix(self) -> Option<String> {
        match self {
            Self::FallbackVote { agreed, samples } => {
                Some(format!("Guess ({agreed} of {samples} samples agreed): "))
            }
            _ => None,
        }
    }
}
