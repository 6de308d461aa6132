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
}
