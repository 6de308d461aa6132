//! What the core needs from its models, without naming llama.cpp: a chat [`LanguageModel`]
//! that writes SQL and answers, and an [`Embedder`] that turns texts into vectors.
//!
//!
//! The implementations are `llm::LlamaEngine` (in-process) and `remote::RemoteEngine` (an
//! OpenAI-compatible server); tests of the state machine use scripted
//! models. Requests are chat messages plus a forced start of the assistant's reply, so the
//! engine can reuse the KV cache of any prefix it has already evaluated.

use std::time::Duration;

use serde::{Deserialize, Serialize};

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Role {
    System,
    User,
    Assistant,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::System => "system",
            Role::User => "user",
            Role::Assistant => "assistant",
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ChatMessage {
    pub role: Role,
    pub content: String,
}

impl ChatMessage {
    pub fn new(role: Role, content: impl Into<String>) -> Self {
        Self {
            role,
            content: content.into(),
        }
    }
}

#[derive(Debug, Clone, Copy, PartialEq)]
pub enum Sampling {
    Greedy,
    Temperature { temperature: f32, seed: u32 },
}

#[derive(Debug, Clone, PartialEq)]
pub struct CompletionRequest {
    pub messages: Vec<ChatMessage>,
    /// Text the assistant's reply is forced to start with (not part of the returned text).
    pub assistant_prefix: String,
    pub max_tokens: usize,
    /// Generation stops when any of these appears; the returned text ends before it.
    pub stop: Vec<String>,
    pub sampling: Sampling,
    /// A GBNF grammar (root rule `root`) constraining the reply, if any.
    pub grammar: Option<String>,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StopReason {
    EndOfText,
    StopString,
    MaxTokens,
    /// Stopped because the reply kept writing one block of text again and again
    /// ([`crate::core::repetition`]).
    Repetition,
}

#[derive(Debug, Clone, PartialEq)]
pub struct Completion {
    pub text: String,
    pub prompt_tokens: usize,
    /// Prompt tokens whose KV cache was reused instead of evaluated.
    pub cached_prompt_tokens: usize,
    pub generated_tokens: usize,
    /// From the request to the first generated token.
    pub time_to_first_token: Duration,
    pub elapsed: Duration,
    pub stop_reason: StopReason,
    /// Mean log-probability (natural log, under the raw logits) of the generated tokens,
    /// when the engine can tell; how sure the model was of what it wrote.
    pub mean_logprob: Option<f32>,
}

#[derive(Debug, thiserror::Error)]
pub enum LlmError {
    #[error(
        "model not found: '{0}' (run scripts/fetch-model.sh to fetch the default model, or pass --model PATH)"
    )]
    ModelNotFound(String),
    #[error("'{0}' is not a GGUF model file")]
    NotGguf(String),
    #[error("could not load model '{path}': {reason}")]
    Load { path: String, reason: String },
    /// The file is a model, but not one that chats (`found` says what it is).
    #[error("'{path}' is {found}; --model needs a chat model such as Qwen2.5-Coder")]
    NotChatModel { path: String, found: String },
    #[error("the prompt needs {needed} tokens but the context holds {available}; raise --context")]
    PromptTooLong { needed: usize, available: usize },
    #[error("inference failed: {0}")]
    Inference(String),
    #[error("generation was cancelled")]
    Cancelled,
    /// No connection to a remote model server (refused, unknown host, connect timeout).
    #[error("could not reach the model server at {url}: {reason}")]
    Unreachable { url: String, reason: String },
    /// The server answered with an HTTP error; `detail` says what to do about it.
    #[error("the model server at {url} answered {status} {reason}: {detail}")]
    ServerStatus {
        url: String,
        status: u16,
        /// The status's name ("Unauthorized").
        reason: String,
        detail: String,
    },
    #[error("the model server at {url} went away mid-answer; nothing was lost, ask again")]
    ServerGone { url: String },
    #[error(
        "the model server at {url} sent nothing for {seconds} s; check the server or raise model.llm_read_timeout_secs"
    )]
    ServerTimeout { url: String, seconds: u64 },
    /// The server reported a failure inside the stream.
    #[error("the model server at {url} failed mid-answer: {message}")]
    ServerFailed { url: String, message: String },
    #[error(
        "the model server at {url} sent something that is not a chat completion ({reason}); is it an OpenAI-compatible /v1 URL?"
    )]
    MalformedStream { url: String, reason: String },
}

/// A chat model the pipeline can ask for text. Streaming goes through `on_text`, which
/// receives each newly decoded piece of the reply (prefix excluded).
pub trait LanguageModel {
    fn complete(
        &mut self,
        request: &CompletionRequest,
        on_text: &mut dyn FnMut(&str),
    ) -> Result<Completion, LlmError>;

    /// A short identifier of the loaded model (and adapter), recorded with every run.
    fn model_id(&self) -> String;

    /// Counts the tokens a text would take, for prompt budgeting.
    fn count_tokens(&self, text: &str) -> usize;
}

#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    #[error(
        "embedding model not found: '{0}' (run scripts/fetch-embedder.sh or pass --embed-model PATH)"
    )]
    ModelNotFound(String),
    #[error("could not load embedding model '{path}': {reason}")]
    Load { path: String, reason: String },
    /// The file is a model, but not a sentence embedder (`found` says what it is).
    #[error(
        "'{path}' is {found}; --embed-model needs a sentence-embedding model such as all-MiniLM-L6-v2"
    )]
    NotEmbeddingModel { path: String, found: String },
    #[error("embedding failed: {0}")]
    Inference(String),
}

/// Turns texts into L2-normalised vectors of a fixed dimension (cosine = dot product).
pub trait Embedder {
    fn dimensions(&self) -> usize;
    /// An identifier of the model, part of every persisted index's cache key.
    fn model_id(&self) -> String;
    fn embed(&mut self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;
}

/// Dot product of two normalised vectors; 0 when their lengths differ.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    if a.len() != b.len() {
        return 0.0;
    }
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}
